"""The pipeline: the stages a config names, in order, checked before any image is touched; one sample or a batch.

`Pipeline.run(item)` makes one sample; `Pipeline.run_batch(items)` runs stage by stage over the batch (each
stage's `Stage.run_batch`, so a model stage calls its back-end once for the batch) and gives the same samples.
`Pipeline.encode` turns a filled context into the shard sample; its meta.json comes from
`vitonprep.sample_meta`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from vitonprep import codecs
from vitonprep.assemble import Producer, SampleBuilder
from vitonprep.config import PipelineConfig
from vitonprep.errors import ConfigError, SampleError
from vitonprep.photos import key_from_name
from vitonprep.raw import RawItem
from vitonprep.sample_meta import SampleIdentity
from vitonprep.shards import Sample
from vitonprep.stages.base import CONTEXT_FIELDS, INPUT_KEYS, SampleContext, Stage
from vitonprep.stages.derive import DeriveStage
from vitonprep.stages.load import LoadStage
from vitonprep.stages.models import ClothMaskStage, DensePoseStage, ParsingStage, PersonCheckStage, PoseStage
from vitonprep.stages.optional import CaptionStage, GarmentPoseStage

logger = logging.getLogger(__name__)

__all__ = ["Pipeline", "RAW_SOURCE"]

#: meta.json ``source`` of samples built from the user's photos
RAW_SOURCE = {"dataset": "raw photos", "licence": "as the source photos (not recorded by vitonprep)"}
#: members every built sample has, after the photo: (member, context field)
_MAPS = ("agn", "agn_mask", "parse_agn", "gt_cloth_warped_mask", "pose_render", "image_densepose")


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
        t0 = time.perf_counter()
        sample = self.encode(ctx)
        _add(timings, "encode", t0)
        return sample

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
        t0 = time.perf_counter()
        out = [c if isinstance(c, SampleError) else self.encode(c) for c in ctxs]
        _add(timings, "encode", t0)
        return out

    def encode(self, ctx: SampleContext) -> Sample:
        """The shard sample of a filled context: members with their producers, and meta.json."""
        item = ctx.item
        b = SampleBuilder(item.key)
        photo = Producer("raw-photo", note=f"fitted to {self.cfg.size[0]}x{self.cfg.size[1]} by {self.cfg.fit}")
        # photos that are already canvas-sized JPEGs are stored byte for byte (LoadStage); others are encoded
        if ctx.image_jpeg:
            b.put("image", ctx.image_jpeg, photo)
        else:
            b.put_array("image", ctx.image, photo)
        b.put_array("parse", ctx.parse, ctx.producers["parse"])
        b.put("pose", codecs.encode_json(ctx.pose.keypoints.to_json_dict()), ctx.producers["pose"])
        for name in _MAPS:
            b.put_array(name, getattr(ctx, name), ctx.producers[name])
        if ctx.cloth is not None:
            if ctx.cloth_jpeg:
                b.put("cloth", ctx.cloth_jpeg, photo)
            else:
                b.put_array("cloth", ctx.cloth, photo)
            b.put_array("cloth_mask", ctx.cloth_mask, ctx.producers["cloth_mask"])
        # optional members: caption.json and the garment-wearer pose; why they are absent goes to meta
        statuses = {}
        if ctx.caption is not None:
            b.put("caption", codecs.encode_json(ctx.caption), ctx.producers["caption"])
        elif ctx.caption_error is not None:
            statuses["caption_status"] = ctx.caption_error
        if ctx.cloth_pose is not None:
            b.put("cloth_pose", codecs.encode_json(ctx.cloth_pose.keypoints.to_json_dict()),
                  ctx.producers["cloth_pose"])
        if ctx.cloth_pose_status is not None:
            statuses["cloth_pose_status"] = ctx.cloth_pose_status
        return b.finish_meta(self.identity(ctx), made_by=self.made_by(ctx), source=RAW_SOURCE, statuses=statuses)

    def identity(self, ctx: SampleContext) -> SampleIdentity:
        item, root = ctx.item, Path(ctx.item.root)
        return SampleIdentity(
            person_file=str(Path(item.person).relative_to(root)),
            cloth_file=str(Path(item.cloth).relative_to(root)) if item.cloth else "",
            person_id=key_from_name(Path(item.person)),
            cloth_id=key_from_name(Path(item.cloth)) if item.cloth else "",
            pair=item.pair, split=self.cfg.split, category=self.cfg.category, size=tuple(self.cfg.size),
            original_size=tuple(ctx.fit.original_size))

    def made_by(self, ctx: SampleContext) -> dict:
        check = ctx.person_check
        return {"fit": {"person": ctx.fit.to_dict(), "cloth": ctx.cloth_fit.to_dict() if ctx.cloth_fit else None},
                "person_check": {"num_persons": check.num_persons, "height_frac": round(check.person_height_frac, 4),
                                 "cut_off": list(check.cut_off)},
                "pipeline": self.cfg.name}


def _add(timings: dict[str, float] | None, name: str, t0: float) -> None:
    if timings is not None:
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0
