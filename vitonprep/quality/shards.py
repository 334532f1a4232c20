"""The quality checks over existing shards (after ``convert``, on old builds): decode each sample with the
trainer's decoders and check it."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from vitonprep import codecs
from vitonprep.quality.config import QualityConfig
from vitonprep.quality.garment import GarmentFaces
from vitonprep.quality.report import QualityReport
from vitonprep.quality.sample import check_sample
from vitonprep.schema import FIELDS_BY_MEMBER
from vitonprep.shards import iter_tar_samples, list_shards

__all__ = ["ShardsQuality", "decode_sample", "check_shards"]

logger = logging.getLogger(__name__)


@dataclass
class ShardsQuality:
    """Per-sample reports (shard, key, report) and the samples that could not be decoded (shard, key, why)."""

    results: list[tuple[str, str, QualityReport]] = field(default_factory=list)
    undecodable: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def flagged(self) -> list[tuple[str, str, QualityReport]]:
        return [r for r in self.results if r[2].flags]

    def counts_by_check(self) -> dict[str, int]:
        """Flagged samples per check."""
        counts: Counter[str] = Counter()
        for _, _, rep in self.results:
            counts.update({f.check for f in rep.flags})
        return dict(sorted(counts.items()))

    def to_dict(self) -> dict[str, Any]:
        return {"samples": len(self.results), "flagged": len(self.flagged), "counts": self.counts_by_check(),
                "undecodable": [{"shard": s, "key": k, "reason": r} for s, k, r in self.undecodable],
                "results": [{"shard": s, "key": k, "quality": rep.to_dict()} for s, k, rep in self.results]}


def decode_sample(members: dict[str, bytes], key: str) -> dict[str, Any]:
    """Decode the contract's members (unknown ones are skipped); raises codecs.DecodeError."""
    out: dict[str, Any] = {}
    for suffix, data in members.items():
        f = FIELDS_BY_MEMBER.get(suffix)
        if f is not None:
            out[f.name] = codecs.decode_field(f, data, key)
    return out


def check_shards(shard_dir: Path, config: QualityConfig | None = None,
                 progress: Callable[[str, int], None] | None = None) -> ShardsQuality:
    """Check every sample of every ``*.tar`` in ``shard_dir``; a sample that does not decode is listed, not judged."""
    config = QualityConfig() if config is None else config
    result = ShardsQuality()
    faces = GarmentFaces() if config.detect_garment_faces else None
    try:
        for tar in list_shards(Path(shard_dir)):
            for sample in iter_tar_samples(tar):
                try:
                    decoded = decode_sample(sample.members, sample.key)
                except codecs.DecodeError as exc:
                    result.undecodable.append((tar.name, sample.key, str(exc)))
                    continue
                result.results.append((tar.name, sample.key, check_sample(decoded, config, faces)))
                if progress is not None:
                    progress(sample.key, 1)
    finally:
        if faces is not None:
            faces.close()
    return result
