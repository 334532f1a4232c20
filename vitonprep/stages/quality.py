"""The quality stage: the quality checks (`vitonprep.quality`) on every built sample, as it will be written.

It judges the encoded members decoded back with the contract's decoders (what `vitonprep.quality.decode_sample`
gives, each member decoded when a check first reads it: `DecodedOnRead`), not the arrays in memory: JPEG moves
pixels, and ``vitonprep quality`` on the written shard must give the same scores as the sample's meta.json. The
verdict goes into meta.json as its last key (``quality``); with ``on_flag: drop`` a flagged sample is a recorded
failure of stage ``quality`` instead, and so is, whatever the policy, a sample the checks cannot read at all.
``docs/architecture.md`` ("Quality gate").
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from vitonprep import codecs
from vitonprep.config import QualityPolicy
from vitonprep.errors import SampleError
from vitonprep.quality import GarmentFaces, QualityReport, check_sample
from vitonprep.sample_meta import with_quality
from vitonprep.schema import FIELDS_BY_MEMBER, FIELDS_BY_NAME
from vitonprep.shards import Sample
from vitonprep.stages.base import SampleContext, Stage

__all__ = ["QualityStage", "QualityCounts", "DecodedOnRead"]

logger = logging.getLogger(__name__)


@dataclass
class QualityCounts:
    """How many samples the stage checked, flagged and dropped, and the flagged samples per check (a sample flagged
    by two checks counts once for each). Carried by each shard's ``_stats.json`` (``quality``)."""

    checked: int = 0
    flagged: int = 0
    dropped: int = 0
    by_check: Counter[str] = field(default_factory=Counter)

    def add(self, report: QualityReport, dropped: bool) -> None:
        self.checked += 1
        if report.flags:
            self.flagged += 1
            self.dropped += int(dropped)
            self.by_check.update({f.check for f in report.flags})

    def merge(self, other: "QualityCounts") -> None:
        self.checked += other.checked
        self.flagged += other.flagged
        self.dropped += other.dropped
        self.by_check.update(other.by_check)

    def to_dict(self) -> dict[str, Any]:
        return {"checked": self.checked, "flagged": self.flagged, "dropped": self.dropped,
                "by_check": dict(sorted(self.by_check.items()))}

    @classmethod
    def from_dict(cls, d: Any) -> "QualityCounts | None":
        """Counts from a stats file's ``quality`` entry; None when it is not one (a shard made without the stage,
        or by another version)."""
        try:
            by_check = Counter({str(k): int(v) for k, v in d["by_check"].items()})
            return cls(int(d["checked"]), int(d["flagged"]), int(d["dropped"]), by_check)
        except (KeyError, TypeError, ValueError, AttributeError):
            return None


class DecodedOnRead(Mapping[str, Any]):
    """A sample's members as `vitonprep.quality.decode_sample` gives them (field name -> decoded value, members
    outside the contract left out), each decoded on first read and kept. The checks read about half of the members
    (photos, parse, pose, masks); decoding the others too (agn.jpg, the DensePose and skeleton images) would cost
    more than the checks themselves (about 14 of 28 ms a sample)."""

    def __init__(self, members: Mapping[str, bytes], key: str):
        self._key = key
        self._encoded = {FIELDS_BY_MEMBER[m].name: (FIELDS_BY_MEMBER[m], data) for m, data in members.items()
                         if m in FIELDS_BY_MEMBER}
        self._decoded: dict[str, Any] = {}

    def known(self, name: str, value: Any) -> None:
        """``value`` is what ``name``'s member decodes to (the caller knows it without decoding it)."""
        if name in self._encoded:
            self._decoded[name] = value

    def __getitem__(self, name: str) -> Any:
        if name not in self._decoded:
            f, data = self._encoded[name]  # KeyError for a member the sample lacks, as from a dict
            self._decoded[name] = codecs.decode_field(f, data, self._key)
        return self._decoded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._encoded)

    def __len__(self) -> int:
        return len(self._encoded)


class QualityStage(Stage):
    """Last stage of a build: reads the encoded sample, writes its verdict into the sample's meta.json.

    One garment face detector per stage (loaded in `setup`, freed in `close`), not one per sample. ``counts``
    accumulates over the samples it sees; the shard worker takes them per shard (`take_counts`)."""

    name, writes = "quality", ("sample", "quality")
    reads = ("sample", "image", "image_jpeg", "cloth", "cloth_jpeg")

    def __init__(self, policy: QualityPolicy):
        self.policy = policy
        self.faces: GarmentFaces | None = None
        self.counts = QualityCounts()

    def setup(self) -> None:
        if self.faces is None:  # its mediapipe graphs are built on first use, so unused ones cost nothing
            self.faces = GarmentFaces()

    def close(self) -> None:
        if self.faces is not None:
            self.faces.close()
            self.faces = None

    def take_counts(self) -> QualityCounts:
        """The counts so far, and a fresh start."""
        counts, self.counts = self.counts, QualityCounts()
        return counts

    def __call__(self, ctx: SampleContext) -> None:
        sample = ctx.sample
        # the bytes were encoded by this process a moment ago: a DecodeError here is a bug, not bad input
        decoded = DecodedOnRead(sample.members, sample.key)
        for name, jpeg, canvas in (("image", ctx.image_jpeg, ctx.image), ("cloth", ctx.cloth_jpeg, ctx.cloth)):
            # a photo stored byte for byte as its file decodes to exactly the canvas the pipeline worked on
            # (`vitonprep.photos.jpeg_stored_as_is`): not decoded again (about 6 ms each). A rebuild's carried-over
            # photos are other bytes and are decoded.
            if jpeg and canvas is not None and sample.members.get(FIELDS_BY_NAME[name].member) == jpeg:
                decoded.known(name, canvas)
        try:
            report = check_sample(decoded, self.policy.thresholds, self.faces)
        except Exception as exc:  # noqa: BLE001 - any other error would fail the whole shard after its retries
            # check_sample turns a check's error into a flag; what still raises (a member that does not decode,
            # a photo model that fails) makes this one sample a recorded failure, and the shard goes on
            raise SampleError(self.name, f"could not be checked: {type(exc).__name__}: {exc}",
                              ctx.item.person) from exc
        ctx.quality = report
        drop = bool(report.flags) and self.policy.on_flag == "drop"
        self.counts.add(report, drop)
        if drop:
            raise SampleError(self.name, "; ".join(f"{f.check}: {f.reason}" for f in report.flags),
                              ctx.item.person)
        if report.flags:
            logger.info("%s flagged by %s", sample.key, ", ".join(f.check for f in report.flags))
        ctx.sample = sample_with_quality(sample, report.to_dict())


def sample_with_quality(sample: Sample, quality: Mapping[str, Any]) -> Sample:
    """``sample`` with ``quality`` as the last key of its meta.json (`vitonprep.sample_meta.with_quality`)."""
    meta = with_quality(json.loads(sample.members["meta.json"]), quality)
    return Sample(sample.key, {**sample.members, "meta.json": codecs.encode_json(meta)})
