"""The model stages: pose, person checks, parsing, DensePose, cloth mask (each calls one registered back-end)."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from vitonprep.backends.protocols import PhotoRect
from vitonprep.backends.registry import make_backend
from vitonprep.config import BackendChoice, PersonPolicy
from vitonprep.derive.body25 import BODY25_NAMES
from vitonprep.derive.densepose import render_densepose
from vitonprep.errors import NoPersonError, SampleError
from vitonprep.stages.base import BackendStage, SampleContext

logger = logging.getLogger(__name__)

__all__ = ["PoseStage", "PersonCheckStage", "ParsingStage", "DensePoseStage", "ClothMaskStage", "photo_rect"]


def photo_rect(ctx: SampleContext) -> PhotoRect:
    """Where the person photo lies on the canvas (the pad of ``fit: pad`` is out of frame)."""
    h, w = ctx.image.shape[:2]
    return PhotoRect.of_fit(ctx.fit, w, h)


class PoseStage(BackendStage):
    name, reads, writes = "pose", ("image",), ("pose",)

    def __init__(self, choice: BackendChoice, weights_dir: str = ""):
        self.backend = make_backend("pose", choice, weights_dir)

    def inputs(self, ctx: SampleContext) -> tuple[Any, ...]:
        return (ctx.image, photo_rect(ctx)) if self.backend.PHOTO_RECT else (ctx.image,)

    def finish(self, ctx: SampleContext, outcome: Any) -> None:
        self.fail_if_error(ctx, outcome, "no person found: " if isinstance(outcome, NoPersonError) else "")
        notes = tuple(getattr(outcome, "notes", ()))  # back-ends without notes (OpenPose) return none
        for note in notes:
            logger.warning("%s: pose: %s", ctx.item.person, note)
        ctx.pose = outcome
        producer = self.producer
        if notes:  # recorded in meta.json (an unclear left/right stays traceable); other samples keep their bytes
            producer = replace(producer, note="; ".join(n for n in (producer.note, *notes) if n))
        ctx.producers["pose"] = producer


class PersonCheckStage(BackendStage):
    """Person count, size and framing; the policy decides which problems are failures."""

    name, reads, writes = "person", ("image", "pose"), ("person_check",)

    def __init__(self, choice: BackendChoice, policy: PersonPolicy, weights_dir: str = ""):
        self.backend = make_backend("person", choice, weights_dir)
        self.policy = policy

    def inputs(self, ctx: SampleContext) -> tuple[Any, ...]:
        return (ctx.image, ctx.pose, photo_rect(ctx)) if self.backend.PHOTO_RECT else (ctx.image, ctx.pose)

    def finish(self, ctx: SampleContext, outcome: Any) -> None:
        self.fail_if_error(ctx, outcome)
        check = ctx.person_check = outcome
        src = ctx.item.person
        if check.num_persons == 0:
            raise SampleError("person", "no person found", src)
        if check.num_persons > 1 and self.policy.several == "reject":
            raise SampleError("person", f"{check.num_persons} persons in the photo (policy: reject)", src)
        if check.person_height_frac < self.policy.min_height_frac:
            raise SampleError("person", f"person too small: spans {check.person_height_frac:.0%} of the image "
                              f"height (minimum {self.policy.min_height_frac:.0%})", src)
        pose = ctx.pose.keypoints.pose
        missing = [j for j in self.policy.required_joints if pose[BODY25_NAMES.index(j), 2] <= 0]
        if missing:
            raise SampleError("person", f"person cut off or occluded: joints {missing} not found "
                              "(needed for the agnostic mask)", src)


class ParsingStage(BackendStage):
    name, reads, writes = "parsing", ("image", "pose"), ("parse",)

    def __init__(self, choice: BackendChoice, category: str, weights_dir: str = ""):
        self.backend = make_backend("parsing", choice, weights_dir)
        self.category = category

    def inputs(self, ctx: SampleContext) -> tuple[Any, ...]:
        args = (ctx.image, ctx.pose, self.category)
        return (*args, photo_rect(ctx)) if self.backend.PHOTO_RECT else args

    def finish(self, ctx: SampleContext, outcome: Any) -> None:
        self.fail_if_error(ctx, outcome)
        h, w = outcome.shape[:2]
        rect = photo_rect(ctx)
        if not rect.is_whole(w, h):  # the pad shows no person, whatever the back-end (SCHP sees a flat band)
            outcome = outcome.copy()
            rect.outside(outcome)
        ctx.parse = outcome
        ctx.producers["parse"] = self.producer


class DensePoseStage(BackendStage):
    """Reads what its back-end declares (``READS``): the photo for DensePose R-CNN, parse + pose for the
    approximation."""

    name, writes = "densepose", ("image_densepose",)

    def __init__(self, choice: BackendChoice, weights_dir: str = ""):
        self.backend = make_backend("densepose", choice, weights_dir)
        self.reads = tuple(self.backend.READS)

    def inputs(self, ctx: SampleContext) -> tuple[Any, ...]:
        return tuple(getattr(ctx, name) for name in self.reads)

    def finish(self, ctx: SampleContext, outcome: Any) -> None:
        self.fail_if_error(ctx, outcome)
        ctx.image_densepose = render_densepose(outcome)
        ctx.producers["image_densepose"] = self.producer


class ClothMaskStage(BackendStage):
    name, reads, writes = "cloth_mask", ("cloth",), ("cloth_mask",)
    SOURCE = "cloth"

    def __init__(self, choice: BackendChoice, weights_dir: str = ""):
        self.backend = make_backend("cloth_mask", choice, weights_dir)

    def applies(self, ctx: SampleContext) -> bool:
        return ctx.cloth is not None  # person-only samples have no garment photo

    def inputs(self, ctx: SampleContext) -> tuple[Any, ...]:
        return (ctx.cloth,)

    def finish(self, ctx: SampleContext, outcome: Any) -> None:
        self.fail_if_error(ctx, outcome)
        ctx.cloth_mask = outcome
        ctx.producers["cloth_mask"] = self.producer
