"""Reading a built shard folder back in the tests."""

from __future__ import annotations

from pathlib import Path

from vitonprep.quality.shards import decode_sample
from vitonprep.shards import iter_tar_samples, list_shards


def samples_by_key(out: Path) -> dict[str, dict[str, bytes]]:
    """Every sample of the shards in ``out``: key -> member -> bytes; fails if a key is written twice."""
    found: dict[str, dict[str, bytes]] = {}
    for tar in list_shards(out):
        for s in iter_tar_samples(tar):
            assert s.key not in found, f"{s.key} written twice"
            found[s.key] = s.members
    return found


def decoded_samples(out: Path) -> list[dict]:
    """Every sample of the shards in ``out`` decoded with the contract's decoders, its key under ``__key__``."""
    return [{**decode_sample(s.members, s.key), "__key__": s.key}
            for tar in list_shards(out) for s in iter_tar_samples(tar)]
