"""Writing and reading vitonprep shards.

On disk, a dataset is a folder of ``{shard:05d}.tar`` WebDataset shards. Each shard has a
``{shard:05d}_stats.json`` written *after* the tar is complete and renamed into place: the stats file is the
completion marker, so a rerun skips finished shards and a killed run loses at most its in-flight shards.
``manifest.json`` aggregates the stats; it is a valid ``wids`` shard index (``__kind__: wids-shard-index-v1``,
``shardlist[{url, nsamples, filesize, md5sum}]``) with vitonprep's own fields beside it.
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
from typing import Any, Iterable, Iterator

from vitonprep.schema import FIELDS, FIELDS_BY_MEMBER, SCHEMA_VERSION, check_key, split_member

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
_MEMBER_ORDER = {f.member: i for i, f in enumerate(FIELDS)}


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


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_digests(path: Path) -> tuple[str, str, int]:
    sha, md5 = hashlib.sha256(), hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            sha.update(chunk)
            md5.update(chunk)
    return sha.hexdigest(), md5.hexdigest(), path.stat().st_size


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def is_shard_complete(out_dir: Path, index: int) -> bool:
    return (out_dir / stats_name(index)).is_file() and (out_dir / shard_name(index)).is_file()


def clear_incomplete_shard(out_dir: Path, index: int) -> None:
    """Remove what a killed run may have left of shard ``index`` (a tar without stats, partial files)."""
    for name in (shard_name(index), shard_name(index) + ".partial", stats_name(index) + ".partial"):
        p = out_dir / name
        if p.exists():
            logger.info("removing incomplete %s", p)
            p.unlink()


def write_shard(
    out_dir: Path,
    index: int,
    samples: Iterable[Sample],
    failures: Iterable[Failure] = (),
    extra_stats: dict[str, Any] | None = None,
) -> ShardResult:
    """Write one shard atomically: tar to ``.partial``, fsync, rename; then the stats file (the marker).

    Tar members are deterministic (sorted by key, fields in schema order, mtime 0, uid/gid 0), so the same
    samples always give byte-identical shards.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    clear_incomplete_shard(out_dir, index)
    tar_path = out_dir / shard_name(index)
    tmp_path = tar_path.with_name(tar_path.name + ".partial")
    samples = sorted(samples, key=lambda s: s.key)
    seen: set[str] = set()
    records = []
    with open(tmp_path, "wb") as fh:
        with tarfile.open(fileobj=fh, mode="w", format=tarfile.USTAR_FORMAT) as tar:
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
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp_path, tar_path)
    sha, md5, size = _file_digests(tar_path)
    failures = list(failures)
    stats = {
        "schema_version": SCHEMA_VERSION,
        "shard": shard_name(index),
        "nsamples": len(records),
        "filesize": size,
        "sha256": sha,
        "md5sum": md5,
        "samples": records,
        "failures": [f.to_dict() for f in failures],
        **(extra_stats or {}),
    }
    _write_atomic(out_dir / stats_name(index), json.dumps(stats, indent=1, sort_keys=True).encode())
    logger.debug("wrote %s (%d samples, %d failures)", tar_path, len(records), len(failures))
    return ShardResult(index=index, nsamples=len(records), failures=failures)


def read_stats(out_dir: Path, index: int) -> dict[str, Any]:
    return json.loads((out_dir / stats_name(index)).read_text())


def completed_shards(out_dir: Path) -> list[int]:
    out = []
    for p in sorted(out_dir.glob("[0-9][0-9][0-9][0-9][0-9]_stats.json")):
        idx = int(p.name[:5])
        if (out_dir / shard_name(idx)).is_file():
            out.append(idx)
    return out


def write_manifest(out_dir: Path, name: str, info: dict[str, Any]) -> dict[str, Any]:
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
    _write_atomic(out_dir / MANIFEST_NAME, json.dumps(manifest, indent=1, sort_keys=True).encode())
    return manifest


def read_manifest(shard_dir: Path) -> dict[str, Any] | None:
    p = shard_dir / MANIFEST_NAME
    return json.loads(p.read_text()) if p.is_file() else None


def list_shards(shard_dir: Path) -> list[Path]:
    """The shard tars of a dataset folder, in order (complete or not)."""
    return sorted(p for p in shard_dir.glob("*.tar") if p.is_file())


def iter_tar_samples(tar_path: Path) -> Iterator[Sample]:
    """Yield samples as stored, grouping consecutive members with the same key (webdataset's rule).

    Raises ``tarfile.ReadError``/``EOFError`` on a truncated or corrupt tar, after yielding what came before.
    A key that reappears later in the same tar is yielded again (validate reports it as a duplicate).
    """
    current: Sample | None = None
    with tarfile.open(tar_path, mode="r|") as tar:
        for info in tar:
            if not info.isfile():
                continue
            key, suffix = split_member(info.name)
            fh = tar.extractfile(info)
            data = fh.read() if fh is not None else b""
            if len(data) != info.size:
                raise EOFError(f"{tar_path.name}: member {info.name} is truncated")
            if current is None or current.key != key:
                if current is not None:
                    yield current
                current = Sample(key=key, members={})
            current.members[suffix] = data
    if current is not None:
        yield current


def known_member(suffix: str) -> bool:
    return suffix in FIELDS_BY_MEMBER
