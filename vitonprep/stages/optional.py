"""Stages of the optional members: garment caption (``caption.json``) and garment-wearer pose (``cloth_pose.json``).

Neither fails a sample: when the member cannot be made, why is recorded in meta.json instead.
"""

from __future__ import annotations

import logging
from pathlib import Path

from vitonprep.assemble import Producer
from vitonprep.backends.registry import make_backend, producer_of
from vitonprep.captions import caption_record
from vitonprep.config import BackendChoice
from vitonprep.derive.body25 import BODY25_NAMES
from vitonprep.errors import InputError, NoPersonError
from vitonprep.photos import key_from_name
from vitonprep.stages.base import SampleContext, Stage

logger = logging.getLogger(__name__)

__all__ = ["CaptionStage", "GarmentPoseStage"]


class CaptionStage(Stage):
    """Garment tags and an IDM-VTON caption (`vitonprep.captions`); a tagging failure is recorded in meta."""

    name, reads, writes = "caption", ("cloth", "cloth_mask", "parse"), ("caption",)

    def __init__(self, choice: BackendChoice, category: str, weights_dir: str = ""):
        self.backend = make_backend("caption", choice, weights_dir)
        self.category = category

    def setup(self) -> None:
        self.backend.setup()

    def close(self) -> None:
        self.backend.close()

    def __call__(self, ctx: SampleContext) -> None:
        ctx.caption = None
        item = ctx.item
        if ctx.cloth is None:
            return
        cloth_id = key_from_name(Path(item.cloth))
        # the person's parse describes the garment only when the person wears it (paired samples)
        parse = ctx.parse if item.pair == "paired" else None
        try:
            tags = self.backend(cloth_id, ctx.cloth_mask, parse, self.category, ctx.cloth)
        except InputError as exc:
            ctx.caption_error = str(exc)
            logger.info("%s: no caption (%s)", item.key, exc)
            return
        ctx.caption = caption_record(tags)
        # the tags name their own source (a tag file's name) and whether they are approximate
        ctx.producers["caption"] = Producer(tags.source, approximate=tags.approximate)


class GarmentPoseStage(Stage):
    """Pose of the person wearing the garment in the garment photo (in-the-wild garment images, TryOnDiffusion's
    garment-wearer pose). Flat shop images give ``cloth_pose = None`` and the reason is recorded in meta."""

    name, reads, writes = "garment_pose", ("cloth",), ("cloth_pose",)
    #: joints a garment photo must show to count as "worn by a person" (shoulders and hips frame the garment)
    REQUIRED = ("RShoulder", "LShoulder", "RHip", "LHip")

    def __init__(self, choice: BackendChoice, person: BackendChoice, weights_dir: str = ""):
        self.backend = make_backend("pose", choice, weights_dir)
        self.person = make_backend("person", person, weights_dir)

    def setup(self) -> None:
        self.backend.setup()
        self.person.setup()

    def close(self) -> None:
        self.backend.close()
        self.person.close()

    def __call__(self, ctx: SampleContext) -> None:
        ctx.cloth_pose = None
        if ctx.cloth is None:
            return
        try:
            pose = self.backend(ctx.cloth)
            check = self.person(ctx.cloth, pose)
        except NoPersonError as exc:
            ctx.cloth_pose_status = f"no person: {exc}"
            return
        except InputError as exc:  # the garment photo is optional evidence: recorded, the sample goes on
            ctx.cloth_pose_status = f"not read: {exc}"
            return
        missing = [j for j in self.REQUIRED if pose.keypoints.pose[BODY25_NAMES.index(j), 2] <= 0]
        if check.num_persons == 0 or missing:
            ctx.cloth_pose_status = f"no person: persons={check.num_persons}, missing joints {missing}"
            return
        ctx.cloth_pose = pose
        ctx.cloth_pose_status = "person found"
        ctx.producers["cloth_pose"] = producer_of(self.backend, note="")
