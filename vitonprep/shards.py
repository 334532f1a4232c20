"""Writing and reading vitonprep shards.

On disk, a dataset is a folder of ``{shard:05d}.tar`` WebDataset shards. Each shard has a
``{shard:05d}_stats.json`` written *after* the tar is complete and renamed into place: the stats file is the
completion marker, so a rerun skips finished shards and a killed run loses at most its in-flight shards.
``manifest.json`` aggregates the stats; it is a valid ``wids`` shard index (``__kind__: wids-shard-index-v1``,
``shardlist[{url, nsamples, filesize, md5sum}]``) with vitonprep's own fields beside it.

The output folder is a local path or any fsspec URL (``s3://``, ``gs://``, ``file://``, ``memory://``). Locally
(paths and ``file://``) the tar goes to ``.partial``, is fsynced and renamed; object stores make a single PUT
visible only when complete, so there the tar is streamed to its final name. Either way the stats file is written
only after the tar is whole: a tar without stats is an unfinished shard, cleared and rewritten by the next run.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

from vitonprep.errors import ConfigError, VitonprepError
from vitonprep.schema import FIELDS, FIELDS_BY_MEMBER, SCHEMA_VERSION, check_key, split_member

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
_MEMBER_ORDER = {f.member: i for i, f in enumerate(FIELDS)}

#: a dataset folder: a local path, or an fsspec URL such as ``s3://bucket/shards`` (a ``str`` containing ``://``)
Location = Path | str


def is_url(location: Location) -> bool:
    return isinstance(location, str) and "://" in location


class ShardStore:
    """Files of one dataset folder, local or behind fsspec; everything shards.py writes goes through it."""

    def __init__(self, location: Location):
        self.location = location
        self.fs, self.root, self.local = None, "", None
        if is_url(location):
            try:
                import fsspec
                from fsspec.implementations.local import LocalFileSystem

                fs, root = fsspec.core.url_to_fs(location)
            except ImportError as exc:  # no fsspec, or no driver for the protocol (s3fs, gcsfs)
                raise ConfigError(f"{location}: {exc} (URL destinations need fsspec and its driver: "
                                  "pip install fsspec s3fs|gcsfs)") from exc
            except ValueError as exc:  # an unknown protocol
                raise ConfigError(f"{location}: {exc}") from exc
            if isinstance(fs, LocalFileSystem):
                self.local = Path(root)  # file://: keep the local path's fsync + atomic rename
            else:
                self.fs, self.root = fs, root.rstrip("/")
        else:
            self.local = Path(location)

    def _remote(self, name: str) -> str:
        return f"{self.root}/{name}"

    def url(self, name: str) -> str:
        return str(self.local / name) if self.local is not None else self.fs.unstrip_protocol(self._remote(name))

    def makedirs(self) -> None:
        if self.local is not None:
            self.local.mkdir(parents=True, exist_ok=True)
        else:
            self.fs.makedirs(self.root, exist_ok=True)

    def exists(self, name: str) -> bool:
        return (self.local / name).is_file() if self.local is not None else self.fs.isfile(self._remote(name))

    def read_bytes(self, name: str) -> bytes:
        return (self.local / name).read_bytes() if self.local is not None else self.fs.cat_file(self._remote(name))

    def open_read(self, name: str) -> IO[bytes]:
        return open(self.local / name, "rb") if self.local is not None else self.fs.open(self._remote(name), "rb")

    def remove(self, name: str) -> None:
        if self.local is not None:
            (self.local / name).unlink()
        else:
            self.fs.rm_file(self._remote(name))

    def write_atomic(self, name: str, data: bytes) -> None:
        if self.local is not None:
            _write_atomic(self.local / name, data)
        else:
            self.fs.pipe_file(self._remote(name), data)

    def names(self, pattern: str) -> list[str]:
        """Sorted file names in the folder matching a glob ``pattern``."""
        if self.local is not None:
            return sorted(p.name for p in self.local.glob(pattern) if p.is_file())
        if not self.fs.exists(self.root):
            return []
        return sorted(p.rsplit("/", 1)[-1] for p in self.fs.glob(self._remote(pattern)))


class _HashingWriter:
    """File-object wrapper that hashes what tarfile writes, so a remote tar never has to be read back."""

    def __init__(self, fh: IO[bytes]):
        self.fh, self.size = fh, 0
        self.sha, self.md5 = hashlib.sha256(), hashlib.md5()

    def write(self, data: bytes) -> int:
        self.fh.write(data)
        self.sha.update(data)
        self.md5.update(data)
        self.size += len(data)
        return len(data)

    def tell(self) -> int:  # tarfile records its start offset
        return self.size


def shard_name(index: int) -> str:
    return f"{index:05d}.tar"


def stats_name(index: int) -> str:
    return f"{index:05d}_stats.json"


@dataclass
class Sample:
    """One encoded sample: key plus ``member suffix -> bytes`` (e.g. ``{"agn_mask.png": b"..."}``)."""

    key: str
    members: dict[str, bytes]


@dataclass
class Failure:
    """A sample that could not be made: which source, which stage, why."""

    source: str
    stage: str
    reason: str
    key: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "source": self.source, "stage": self.stage, "reason": self.reason}


@dataclass
class ShardResult:
    index: int
    nsamples: int
    failures: list[Failure] = field(default_factory=list)
    skipped: bool = False
    error: str = ""  # set when the shard could not be made at all (the distributed runner's retries ran out)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def is_shard_complete(out_dir: Location, index: int) -> bool:
    store = ShardStore(out_dir)
    return store.exists(stats_name(index)) and store.exists(shard_name(index))


def clear_incomplete_shard(out_dir: Location, index: int) -> None:
    """Remove what a killed run may have left of shard ``index`` (a tar without stats, partial files)."""
    store = ShardStore(out_dir)
    for name in (shard_name(index), shard_name(index) + ".partial", stats_name(index) + ".partial"):
        if store.exists(name):
            logger.info("removing incomplete %s", store.url(name))
            store.remove(name)


def _write_tar(fh: IO[bytes], index: int, samples: list[Sample]) -> tuple[list[dict[str, Any]], _HashingWriter]:
    out = _HashingWriter(fh)
    seen: set[str] = set()
    records = []
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for sample in samples:
            check_key(sample.key)
            if sample.key in seen:
                raise ValueError(f"duplicate sample key {sample.key!r} in shard {index}")
            seen.add(sample.key)
            member_sums = {}
            for suffix in sorted(sample.members, key=lambda m: (_MEMBER_ORDER.get(m, 999), m)):
                data = sample.members[suffix]
                if not isinstance(data, bytes):
                    raise TypeError(f"{sample.key}.{suffix}: member data must be bytes")
                info = tarfile.TarInfo(f"{sample.key}.{suffix}")
                info.size, info.mtime, info.mode = len(data), 0, 0o444
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                tar.addfile(info, io.BytesIO(data))
                member_sums[suffix] = _sha256(data)
            records.append({"key": sample.key, "members": member_sums})
    return records, out


def write_shard(
    out_dir: Location,
    index: int,
    samples: Iterable[Sample],
    failures: Iterable[Failure] = (),
    extra_stats: dict[str, Any] | None = None,
) -> ShardResult:
    """Write one shard atomically: the tar (locally via ``.partial`` + fsync + rename), then the stats file (the
    marker).

    Tar members are deterministic (sorted by key, fields in schema order, mtime 0, uid/gid 0), so the same
    samples always give byte-identical shards.
    """
    store = ShardStore(out_dir)
    store.makedirs()
    if store.exists(stats_name(index)):  # rewriting a finished shard (a retry): the marker goes first
        store.remove(stats_name(index))
    clear_incomplete_shard(out_dir, index)
    samples = sorted(samples, key=lambda s: s.key)
    if store.local is not None:
        tar_path = store.local / shard_name(index)
        tmp_path = tar_path.with_name(tar_path.name + ".partial")
        with open(tmp_path, "wb") as fh:
            records, digest = _write_tar(fh, index, samples)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_path, tar_path)
    else:
        # object stores publish an object only when its upload completes, so the final name is safe to stream to
        with store.fs.open(store._remote(shard_name(index)), "wb") as fh:
            records, digest = _write_tar(fh, index, samples)
    failures = list(failures)
    stats = {
        "schema_version": SCHEMA_VERSION,
        "shard": shard_name(index),
        "nsamples": len(records),
        "filesize": digest.size,
        "sha256": digest.sha.hexdigest(),
        "md5sum": digest.md5.hexdigest(),
        "samples": records,
        "failures": [f.to_dict() for f in failures],
        **(extra_stats or {}),
    }
    store.write_atomic(stats_name(index), json.dumps(stats, indent=1, sort_keys=True).encode())
    logger.debug("wrote %s (%d samples, %d failures)", store.url(shard_name(index)), len(records), len(failures))
    return ShardResult(index=index, nsamples=len(records), failures=failures)


def read_stats(out_dir: Location, index: int) -> dict[str, Any]:
    return json.loads(ShardStore(out_dir).read_bytes(stats_name(index)))


def completed_shards(out_dir: Location) -> list[int]:
    store = ShardStore(out_dir)
    tars = set(store.names("[0-9][0-9][0-9][0-9][0-9].tar"))
    return [int(n[:5]) for n in store.names("[0-9][0-9][0-9][0-9][0-9]_stats.json") if shard_name(int(n[:5])) in tars]


def write_json(out_dir: Location, name: str, obj: Any) -> None:
    store = ShardStore(out_dir)
    store.makedirs()
    store.write_atomic(name, json.dumps(obj, indent=1, sort_keys=True, default=str).encode())


def read_json(out_dir: Location, name: str) -> Any | None:
    store = ShardStore(out_dir)
    return json.loads(store.read_bytes(name)) if store.exists(name) else None


def write_manifest(out_dir: Location, name: str, info: dict[str, Any]) -> dict[str, Any]:
    """Aggregate every completed shard's stats into ``manifest.json`` (a wids index plus vitonprep fields)."""
    shardlist, failures, total = [], [], 0
    for idx in completed_shards(out_dir):
        st = read_stats(out_dir, idx)
        shardlist.append(
            {
                "url": st["shard"],
                "nsamples": st["nsamples"],
                "filesize": st["filesize"],
                "md5sum": st["md5sum"],
                "sha256": st["sha256"],
            }
        )
        failures.extend(st.get("failures", []))
        total += st["nsamples"]
    manifest = {
        "__kind__": "wids-shard-index-v1",
        "wids_version": 1,
        "name": name,
        "shardlist": shardlist,
        "vitonprep": {
            "schema_version": SCHEMA_VERSION,
            "nsamples": total,
            "nfailures": len(failures),
            "fields": {f.member: {"kind": f.kind.value, "required": f.required} for f in FIELDS},
            **info,
        },
    }
    ShardStore(out_dir).write_atomic(MANIFEST_NAME, json.dumps(manifest, indent=1, sort_keys=True).encode())
    return manifest


def read_manifest(shard_dir: Location) -> dict[str, Any] | None:
    return read_json(shard_dir, MANIFEST_NAME)


def list_shards(shard_dir: Path) -> list[Path]:
    """The shard tars of a dataset folder, in order (complete or not)."""
    return sorted(p for p in shard_dir.glob("*.tar") if p.is_file())


class UnsafeMember(VitonprepError, tarfile.TarError):
    """A tar member that no vitonprep writer makes: a link, a device, a folder, or a name with a path in it."""


_NOT_A_FILE = (("issym", "a symbolic link"), ("islnk", "a hard link"), ("ischr", "a device"), ("isblk", "a device"),
               ("isfifo", "a fifo"), ("isdir", "a folder"))


def check_member(info: tarfile.TarInfo, shard: str) -> None:
    """Refuse members our writer never makes (UnsafeMember naming the shard and member): only regular files
    named ``KEY.field`` with no folder part. Nothing is ever extracted, but a name like ``../../k.image.jpg`` would
    otherwise pass for sample ``k`` here and mean something else to other tar readers."""
    for test, what in _NOT_A_FILE:
        if getattr(info, test)():
            raise UnsafeMember(f"{shard}: member {info.name!r} is {what}: shards hold regular files only")
    if not info.isfile():
        raise UnsafeMember(f"{shard}: member {info.name!r} is of tar type {info.type!r}: "
                           "shards hold regular files only")
    if "/" in info.name or "\\" in info.name or "\0" in info.name or info.name.startswith("."):
        raise UnsafeMember(f"{shard}: member {info.name!r} is not a plain member name (KEY.field, no folders)")


def iter_tar_samples(tar_path: Path | IO[bytes]) -> Iterator[Sample]:
    """Yield samples as stored, grouping consecutive members with the same key (webdataset's rule).

    ``tar_path`` is a local path or an open binary file (e.g. ``ShardStore.open_read``).
    Raises ``tarfile.ReadError``/``EOFError`` on a truncated or corrupt tar and ``UnsafeMember`` (a TarError) on a
    member that is not a plainly named regular file, after yielding what came before; the sample being read
    when that happens is not yielded. A key that reappears later in the same tar is yielded again (validate
    reports it as a duplicate).
    """
    current: Sample | None = None
    label = Path(str(getattr(tar_path, "name", "") or "shard") if hasattr(tar_path, "read") else tar_path).name
    src = {"fileobj": tar_path} if hasattr(tar_path, "read") else {"name": tar_path}
    with tarfile.open(mode="r|", **src) as tar:
        for info in tar:
            check_member(info, label)
            key, suffix = split_member(info.name)
            fh = tar.extractfile(info)
            data = fh.read() if fh is not None else b""
            if len(data) != info.size:
                raise EOFError(f"{label}: member {info.name} is truncated")
            if current is None or current.key != key:
                if current is not None:
                    yield current
                current = Sample(key=key, members={})
            current.members[suffix] = data
    if current is not None:
        yield current


def known_member(suffix: str) -> bool:
    return suffix in FIELDS_BY_MEMBER
