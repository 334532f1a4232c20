"""Where test samples come from: vitonprep shards, or a VITON-HD folder converted on the fly.

A VITON-HD folder (2021 dashed names or v3 names, ``image/`` … directly or under ``test/``/``train/``) is read with
``vitonprep.convert_samples("vitonhd", ...)``, sample by sample, in memory: exactly what ``vitonprep convert vitonhd``
would write, without writing shards. Maps the folder lacks (agnostic,
DensePose, …) are derived as the converter does and recorded in each sample's ``meta.producers``.

Every sample is yielded in the shard contract's decoded form (``{field name: value, "__key__": key}``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterator

import vitonprep
from vitonprep.codecs import decode_field
from vitonprep.schema import FIELDS_BY_MEMBER
from vitontrain.data.shards import decoded_samples, shard_urls

logger = logging.getLogger(__name__)

#: sample modes; the shard ``meta.pair`` value of each and the official output folder name
MODES = {"paired": "pair", "unpaired": "unpair"}


def source_kind(source: Path) -> str:
    """``shards`` (a folder of .tar files) or ``vitonhd`` (a VITON-HD folder)."""
    source = Path(source)
    if not source.is_dir():
        raise FileNotFoundError(f"source folder not found: {source}")
    if any(source.glob("*.tar")):
        return "shards"
    if (source / "image").is_dir() or any((source / s / "image").is_dir() for s in ("test", "train")):
        return "vitonhd"
    raise FileNotFoundError(f"{source}: neither a folder of .tar shards nor a VITON-HD folder (image/ directly or "
                            f"under test/ or train/)")


def decode_encoded(key: str, members: dict[str, bytes]) -> dict[str, Any]:
    """An encoded vitonprep ``Sample``'s members → the decoded shard-contract dict (same decoders as shards)."""
    out: dict[str, Any] = {"__key__": key}
    for member, data in members.items():
        field = FIELDS_BY_MEMBER.get(member)
        if field is not None:
            out[field.name] = decode_field(field, data, key)
    return out


def _vitonhd_samples(root: Path, split: str | None) -> Iterator[dict[str, Any]]:
    for item in vitonprep.convert_samples("vitonhd", root, split):
        if isinstance(item, vitonprep.Failure):  # an input the converter cannot use, or a sample it could not make
            logger.warning("skipped %s: %s", item.key or item.source, item.reason)
            continue
        yield decode_encoded(item.key, item.members)


def _shard_samples(folder: Path) -> Iterator[dict[str, Any]]:
    yield from decoded_samples(shard_urls(folder))


def iter_samples(source: Path, modes: tuple[str, ...] = ("paired", "unpaired"), split: str | None = None,
                 limit: int | None = None) -> Iterator[dict[str, Any]]:
    """Decoded samples of ``source`` whose ``meta.pair`` is one of ``modes`` (at most ``limit`` per mode)."""
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise ValueError(f"unknown modes {unknown} (paired, unpaired)")
    kind = source_kind(source)
    samples = _shard_samples(source) if kind == "shards" else _vitonhd_samples(Path(source), split)
    counts = {m: 0 for m in modes}
    for sample in samples:
        meta = sample.get("meta") or {}
        pair = meta.get("pair")
        if pair not in counts or "cloth" not in sample:
            continue
        if kind == "shards" and split is not None and meta.get("split") != split:
            continue
        if limit is not None and counts[pair] >= limit:
            if all(c >= limit for c in counts.values()):
                return
            continue
        counts[pair] += 1
        yield sample
