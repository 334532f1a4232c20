"""Reading vitonprep shards with webdataset through the shard contract's own decoders.

Masks and label maps never pass through webdataset's RGB decoders (shared/docs/environment.md section 7).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import webdataset as wds

from vitonprep.codecs import decode_member
from vitonprep.schema import FIELDS, required_fields


class ContractError(ValueError):
    """A sample read by the trainer does not satisfy the shard contract."""


def shard_urls(shard_dir: Path) -> list[str]:
    urls = sorted(str(p) for p in Path(shard_dir).glob("*.tar"))
    if not urls:
        raise FileNotFoundError(f"no .tar shards in {shard_dir}")
    return urls


def decoded_samples(urls: list[str]) -> Iterator[dict[str, Any]]:
    """Yield samples as ``{field name: decoded value, '__key__': key}`` in shard order."""
    dataset = wds.WebDataset(urls, shardshuffle=False, empty_check=False).decode(decode_member)
    for raw in dataset:
        sample = {"__key__": raw["__key__"]}
        for f in FIELDS:
            if f.member in raw:
                sample[f.name] = raw[f.member]
        yield sample


def check_sample(sample: dict[str, Any]) -> None:
    """Assert one decoded sample against the contract (the trainer's first-batch check)."""
    pair = sample.get("meta", {}).get("pair") if isinstance(sample.get("meta"), dict) else None
    missing = [name for name in required_fields(pair) if name not in sample]
    if missing:
        raise ContractError(f"sample {sample.get('__key__')}: missing fields {missing}")
    h, w = sample["image"].shape[:2]
    for f in FIELDS:
        v = sample.get(f.name)
        if f.size.value == "person" and v is not None and v.shape[:2] != (h, w):
            raise ContractError(f"sample {sample['__key__']}: {f.name} is {v.shape[:2]}, image is {(h, w)}")
        if f.kind.value == "mask" and v is not None and v.dtype != bool:
            raise ContractError(f"sample {sample['__key__']}: {f.name} decoded to {v.dtype}, expected bool")
