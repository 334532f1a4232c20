"""Reading vitonprep shards: tar members grouped into samples (webdataset's rules), decoded by the shard contract's
own decoders, and checked.

Shards are untrusted input. Only the contract's members are ever decoded: webdataset's default decoders would
unpickle ``.pyd``/``.pickle``/``.pkl`` members and ``torch.load`` ``.pth`` ones with a full unpickler, so a planted
member could run code; here any other member is ignored as bytes. Masks and label maps never pass through
webdataset's RGB decoders (they would make a mask three channels and a label map colours). A tar that cannot be
read (truncated, damaged) raises :class:`ShardReadError` naming the shard, never a bare ``tarfile.ReadError``.
"""

from __future__ import annotations

import os
import tarfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import webdataset as wds
from webdataset.tariterators import base_plus_ext, group_by_keys, tar_file_expander

from vitonprep.codecs import DecodeError, decode_member
from vitonprep.schema import FIELDS, FIELDS_BY_MEMBER, Kind, required_fields

GOPEN_SCHEMES = ("pipe:", "http://", "https://", "file:")
#: a tar ends with zero blocks; more than this much unread data after its last member is damage, not padding
_MAX_TAIL = 1 << 20


class ContractError(ValueError):
    """A sample read by the trainer does not satisfy the shard contract."""


class ShardReadError(ValueError):
    """A shard file cannot be read as a tar (truncated, damaged, not a tar); the message names it."""


def shard_urls(shard_dir: Path) -> list[str]:
    urls = sorted(str(p) for p in Path(shard_dir).glob("*.tar"))
    if not urls:
        raise FileNotFoundError(f"no .tar shards in {shard_dir}")
    return urls


def open_url(url: str) -> Any:
    """A readable binary stream for a shard URL (local path, pipe:, http(s), or any fsspec URL)."""
    if "://" not in url or url.startswith(GOPEN_SCHEMES):
        return wds.gopen(url, "rb")
    import fsspec  # only needed for object stores; pulled in by the `train` extra

    return fsspec.open(url, "rb").open()


def _reason(exc: BaseException) -> str:
    # webdataset appends (stream, url) to the args of errors it passes on; the first arg is the message
    return str(exc.args[0]) if exc.args else type(exc).__name__


def raw_samples(url: str) -> Iterator[dict[str, Any]]:
    """One shard's samples, grouped as webdataset groups them: ``{suffix: bytes, "__key__", "__url__"}``. Nothing
    is decoded here."""
    stream = open_url(url)
    last: str | None = None
    try:
        members = tar_file_expander([{"url": url, "stream": stream}], handler=wds.reraise_exception)
        for sample in group_by_keys(members):
            sample["__url__"] = url
            last = sample["__key__"]
            yield sample
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        where = f"after sample {last}" if last is not None else "before its first sample"
        raise ShardReadError(f"shard {url}: truncated or damaged tar, {where} ({_reason(exc)}); copy it again or "
                             f"rebuild it (`vitonprep validate` tells what is wrong)") from exc
    finally:
        stream.close()


def decode_sample(raw: dict[str, Any]) -> dict[str, Any]:
    """The contract's members of a raw sample, decoded: ``{field name: value, "__key__": key}``; others ignored."""
    sample: dict[str, Any] = {"__key__": raw["__key__"]}
    for member, data in raw.items():
        f = FIELDS_BY_MEMBER.get(member)
        if f is None:
            continue
        try:
            sample[f.name] = decode_member(member, data)
        except DecodeError as exc:
            raise DecodeError(f"shard {raw.get('__url__', '?')}: sample {raw['__key__']}: {exc}") from exc
    return sample


def decoded_samples(urls: list[str]) -> Iterator[dict[str, Any]]:
    """Yield samples as ``{field name: decoded value, '__key__': key}`` in shard order."""
    for url in urls:
        for raw in raw_samples(url):
            yield decode_sample(raw)


def check_sample(sample: dict[str, Any]) -> None:
    """Assert one decoded sample against the contract (the trainer's first-batch check)."""
    key = sample.get("__key__")
    pair = sample.get("meta", {}).get("pair") if isinstance(sample.get("meta"), dict) else None
    missing = [name for name in required_fields(pair) if name not in sample]
    if missing:
        raise ContractError(f"sample {key}: missing fields {missing}")
    h, w = sample["image"].shape[:2]
    for f in FIELDS:
        v = sample.get(f.name)
        if v is None:
            continue
        if f.size.value == "person" and v.shape[:2] != (h, w):
            raise ContractError(f"sample {key}: {f.name} is {v.shape[:2]}, image is {(h, w)}")
        if f.kind.value == "mask" and v.dtype != bool:
            raise ContractError(f"sample {key}: {f.name} decoded to {v.dtype}, expected bool")
        if f.kind is Kind.LABELS and f.label_range is not None and v.size:
            lo, hi = f.label_range
            low, high = int(v.min()), int(v.max())
            if low < lo or high > hi:
                bad = high if high > hi else low
                raise ContractError(f"sample {key}: {f.member} has label {bad}, outside {lo}..{hi}")


# ------------------------------------------------------------------------------------------- structural checks
def is_local_tar(url: str) -> bool:
    return "://" not in url and not url.startswith("pipe:") and Path(url).is_file()


def unsafe_key(key: str) -> str | None:
    """Why a sample key cannot be one (keys become file names downstream), or None when it is a plain name."""
    if not key or "/" in key or "\\" in key or key in (".", "..") or "\0" in key:
        return f"key {key!r} is not a plain name"
    return None


def scan_tar(path: str) -> list[str]:
    """The sample keys of a local tar, in order, from its headers alone (one seek per member, no data read).

    A member whose data runs past the end of the file, a damaged header, or unread bytes that are not the tar's
    closing zero blocks raise :class:`ShardReadError`.
    """
    size = os.path.getsize(path)
    keys: list[str] = []
    last: str | None = None
    try:
        with tarfile.open(path, "r:") as tar:
            for member in tar:
                if member.offset_data + member.size > size:
                    raise ShardReadError(f"shard {path}: truncated: member {member.name} needs "
                                         f"{member.offset_data + member.size - size} bytes past the end of the "
                                         f"file ({size} bytes); copy it again or rebuild it")
                if not member.isfile():
                    continue
                key, _ = base_plus_ext(member.name)
                if key is None:
                    continue
                if key != last:
                    keys.append(key)
                    last = key
            end = tar.offset
    except tarfile.TarError as exc:
        where = f"after sample {last}" if last is not None else "before its first sample"
        raise ShardReadError(f"shard {path}: damaged tar, {where} ({exc}); copy it again or rebuild it") from exc
    tail = size - end
    if tail < tarfile.BLOCKSIZE:
        raise ShardReadError(f"shard {path}: truncated: no end-of-archive marker after sample {last}; copy it "
                             f"again or rebuild it")
    if tail > _MAX_TAIL:
        raise ShardReadError(f"shard {path}: damaged tar: {tail} unreadable bytes after sample {last}; copy it "
                             f"again or rebuild it")
    with open(path, "rb") as f:
        f.seek(end)
        if f.read(tail).strip(b"\0"):
            raise ShardReadError(f"shard {path}: damaged tar: unreadable data after sample {last} (a cut or "
                                 f"overwritten member header); copy it again or rebuild it")
    return keys


def check_local_shards(urls: list[str]) -> None:
    """Every local ``.tar`` of ``urls`` is whole (headers only, see :func:`scan_tar`); raises on the first that is
    not. Remote shards are checked as they are read."""
    for url in urls:
        if is_local_tar(url):
            scan_tar(url)


@dataclass(frozen=True)
class Problem:
    shard: str
    key: str | None
    message: str

    def __str__(self) -> str:
        return f"{self.shard}: {'sample ' + self.key + ': ' if self.key is not None else ''}{self.message}"


@dataclass
class ShardCheck:
    """What :func:`check_shards` found: the samples that passed, and every problem with its shard and key."""

    shards: int = 0
    keys: int = 0
    read: int = 0  # samples decoded (checked or not)
    checked: list[dict[str, Any]] = field(default_factory=list)  # {"key", "shard", "fields", "image"}
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and bool(self.checked)


def _without_prefix(message: str, *prefixes: str) -> str:
    for p in prefixes:
        if message.startswith(p):
            message = message[len(p):]
    return message


def check_shards(urls: list[str], n: int = 8) -> ShardCheck:
    """Check shards as the trainer reads them, reporting every problem instead of stopping at the first.

    Every shard: the tar is whole (local files: headers only), keys are plain names and unique across all shards.
    The first ``n`` samples in shard order: every contract member decodes, and the sample meets the contract
    (fields, sizes, binary masks, label ranges).
    """
    report = ShardCheck(shards=len(urls))
    seen: dict[str, list[str]] = defaultdict(list)
    damaged: set[str] = set()
    for url in urls:
        if not is_local_tar(url):
            continue
        try:
            keys = scan_tar(url)
        except ShardReadError as exc:
            report.problems.append(Problem(url, None, _without_prefix(str(exc), f"shard {url}: ")))
            damaged.add(url)
            continue
        for key in keys:
            seen[key].append(url)
            if why := unsafe_key(key):
                report.problems.append(Problem(url, key, why))
    report.keys = len(seen)
    for key, where in seen.items():
        if len(where) > 1:
            report.problems.append(Problem(where[0], key, f"duplicate key: also in {', '.join(where[1:])}"))
    for url in urls:
        if report.read >= n:
            break
        if url in damaged:
            continue
        try:
            for raw in raw_samples(url):
                key = raw["__key__"]
                report.read += 1
                try:
                    sample = decode_sample(raw)
                    check_sample(sample)
                except (DecodeError, ContractError) as exc:
                    report.problems.append(Problem(url, key, _without_prefix(
                        str(exc), f"shard {url}: ", f"sample {key}: ")))
                else:
                    report.checked.append({"key": key, "shard": url, "fields": len(sample) - 1,
                                           "image": "x".join(map(str, sample["image"].shape))})
                if report.read >= n:
                    break
        except ShardReadError as exc:
            report.problems.append(Problem(url, None, _without_prefix(str(exc), f"shard {url}: ")))
    return report
