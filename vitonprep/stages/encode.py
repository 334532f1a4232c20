"""The encode stage: a filled context becomes the shard sample (encoded members and meta.json).

It is a stage, not the pipeline's epilogue, so that what comes after it (a rebuild's carry-over, the quality
checks) sees the bytes that will be written. meta.json comes from `vitonprep.sample_meta`.
"""

from __future__ import annotations

from pathlib import Path

from vitonprep import codecs
from vitonprep.assemble import Producer, SampleBuilder
from vitonprep.config import PipelineConfig
from vitonprep.photos import key_from_name
from vitonprep.sample_meta import SampleIdentity
from vitonprep.stages.base import SampleContext, Stage

__all__ = ["EncodeStage", "RAW_SOURCE"]

#: meta.json ``source`` of samples built from the user's photos
RAW_SOURCE = {"dataset": "raw photos", "licence": "as the source photos (not recorded by vitonprep)"}
#: members every built sample has, after the photo: (member, context field)
_MAPS = ("agn", "agn_mask", "parse_agn", "gt_cloth_warped_mask", "pose_render", "image_densepose")


class EncodeStage(Stage):
    name = "encode"
    reads = ("item", "image", "fit", "image_jpeg", "cloth", "cloth_fit", "cloth_jpeg", "pose", "person_check",
             "parse", "cloth_mask", *_MAPS)
    writes = ("sample",)

    def __init__(self, cfg: PipelineConfig):
        self.cfg = cfg

    def __call__(self, ctx: SampleContext) -> None:
        """Members with their producers, and meta.json; optional members only when made, else why not (meta)."""
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
        ctx.sample = b.finish_meta(self.identity(ctx), made_by=self.made_by(ctx), source=RAW_SOURCE,
                                   statuses=statuses)

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
