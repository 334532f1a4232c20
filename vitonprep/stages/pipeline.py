"""The pipeline: the stages a config names, in order, checked before any image is touched; one sample or a batch.

`Pipeline.run(item)` makes one sample; `Pipeline.run_batch(items)` runs stage by stage over the batch (each
stage's `Stage.run_batch`, so a model stage calls its back-end once for the batch) and gives the same samples.
The order: load, the model stages, derive, the optional members, `EncodeStage` (the shard sample; its meta.json
comes from `vitonprep.sample_meta`) and, unless ``quality.enabled: false``, `QualityStage` on the encoded sample.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Sequence

from vitonprep.config import PipelineConfig
from vitonprep.errors import ConfigError, SampleError
from vitonprep.raw import RawItem
from vitonprep.shards import Sample
from vitonprep.stages.base import CONTEXT_FIELDS, INPUT_KEYS, SampleContext, Stage
from vitonprep.stages.derive import DeriveStage
from vitonprep.stages.encode import EncodeStage
from vitonprep.stages.load import LoadStage
from vitonprep.stages.models import ClothMaskStage, DensePoseStage, ParsingStage, PersonCheckStage, PoseStage
from vitonprep.stages.optional import CaptionStage, GarmentPoseStage
from vitonprep.stages.quality import QualityStage

logger = logging.getLogger(__name__)

__all__ = ["Pipeline"]


@dataclass
class Pipeline:
    cfg: PipelineConfig
    stages: list[Stage] = field(default_factory=list)
    ready: bool = False

    @classmethod
    def from_config(cls, cfg: PipelineConfig) -> "Pipeline":
        s, wd = cfg.stages, cfg.weights_dir
        pipe = cls(cfg, [LoadStage(cfg), PoseStage(s.pose, wd), PersonCheckStage(s.person, cfg.persons, wd),
                         ParsingStage(s.parsing, cfg.category, wd), DensePoseStage(s.densepose, wd),
                         ClothMaskStage(s.cloth_mask, wd), DeriveStage(cfg.category)])
        if s.caption.backend != "none":
            pipe.stages.append(CaptionStage(s.caption, cfg.category, wd))
        if s.garment_pose.backend != "none":
            pipe.stages.append(GarmentPoseStage(s.garment_pose, s.person, wd))
        pipe.stages.append(EncodeStage(cfg))
        if cfg.quality.enabled:
            pipe.stages.append(QualityStage(cfg.quality))
        pipe.check()
        return pipe

    def check(self) -> None:
        """Every key a stage reads is written upstream (or given by the raw input), and is a context field."""
        available = set(INPUT_KEYS)
        for stage in self.stages:
            unknown = [k for k in (*stage.reads, *stage.writes) if k not in CONTEXT_FIELDS]
            if unknown:
                raise ConfigError(f"stage {stage.name!r} names {unknown}, which are not sample context fields")
            missing = [k for k in stage.reads if k not in available]
            if missing:
                raise ConfigError(f"stage {stage.name!r} reads {missing}, which no earlier stage writes")
            available.update(stage.writes)

    def setup(self) -> None:
        if not self.ready:
            for stage in self.stages:
                stage.setup()
            self.ready = True

    def close(self) -> None:
        for stage in self.stages:
            stage.close()
        self.ready = False

    def run(self, item: RawItem, timings: dict[str, float] | None = None) -> Sample:
        """One sample; a SampleError (the photo cannot give one) is raised."""
        self.setup()
        ctx = SampleContext(item)
        for stage in self.stages:
            t0 = time.perf_counter()
            stage(ctx)
            _add(timings, stage.name, t0)
        return _made(ctx)

    def run_batch(self, items: Sequence[RawItem], timings: dict[str, float] | None = None
                  ) -> list[Sample | SampleError]:
        """Several samples, stage by stage (each stage sees the batch); per item its sample or its SampleError,
        equal to what `run` gives item by item."""
        self.setup()
        ctxs: list[SampleContext | SampleError] = [SampleContext(item) for item in items]
        for stage in self.stages:
            live = [i for i, c in enumerate(ctxs) if isinstance(c, SampleContext)]
            if not live:
                break
            t0 = time.perf_counter()
            for i, out in zip(live, stage.run_batch([ctxs[i] for i in live]), strict=True):
                ctxs[i] = out
            _add(timings, stage.name, t0)
        return [c if isinstance(c, SampleError) else _made(c) for c in ctxs]


def _made(ctx: SampleContext) -> Sample:
    if ctx.sample is None:  # a pipeline assembled by hand without the encode stage
        raise ConfigError("the pipeline made no shard sample: its stages must include the encode stage")
    return ctx.sample


def _add(timings: dict[str, float] | None, name: str, t0: float) -> None:
    if timings is not None:
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0
