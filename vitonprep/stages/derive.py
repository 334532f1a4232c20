"""The derive stage: the deterministic VITON-HD maps from photo, parse and pose (no model).

upper_body: HR-VITON agnostic-v3.2, agnostic-mask and parse-agnostic (what VITON-HD ships).
lower_body / dresses: HR-VITON's agnostic covers only the upper body, so the agnostic mask is IDM-VTON's
``get_mask_location('hd', category)`` (yisol/IDM-VTON ``utils_mask.py``) bounded by the hem, shoes, hands and face
(`vitonprep.derive.masks_category`, docs/masks.md); the agnostic image is the photo grayed under it, parse-agnostic
is the parse with that region cleared and gt_cloth_warped_mask the garment labels inside it.

Provenance: a map is approximate when an input it is computed from is (see `DeriveStage.INPUTS`).
"""

from __future__ import annotations

from vitonprep.assemble import Producer
from vitonprep.derive import agnostic as agn
from vitonprep.derive.masks_category import category_maps
from vitonprep.derive.pose_render import render_pose
from vitonprep.errors import SampleError
from vitonprep.stages.base import SampleContext, Stage

__all__ = ["DeriveStage"]

#: BODY_25 joints HR-VITON's agnostic cannot do without (its own check names them the same way)
_AGNOSTIC_JOINTS = ((1, "neck"), (2, "right shoulder"), (5, "left shoulder"), (9, "right hip"), (12, "left hip"))


class DeriveStage(Stage):
    name, reads = "derive", ("image", "parse", "pose")
    writes = ("agn", "agn_mask", "parse_agn", "gt_cloth_warped_mask", "pose_render")

    #: CIHP labels of the worn garment for upper_body's gt_cloth_warped_mask (lower_body / dresses:
    #: `vitonprep.derive.masks_category.GARMENT_LABELS`)
    GARMENT_LABELS = {"upper_body": (5, 6, 7)}
    #: the model-made inputs of each map: it is approximate when one of them is (lower_body / dresses: the
    #: garment labels inside the pose-bounded mask, so gt_cloth_warped_mask reads the pose too)
    INPUTS = {"agn": ("parse", "pose"), "agn_mask": ("parse", "pose"), "parse_agn": ("parse", "pose"),
              "gt_cloth_warped_mask": ("parse",), "pose_render": ("pose",)}
    CATEGORY_INPUTS = {**INPUTS, "gt_cloth_warped_mask": ("parse", "pose")}

    def __init__(self, category: str = "upper_body"):
        self.category = category

    def __call__(self, ctx: SampleContext) -> None:
        image, parse, kp = ctx.image, ctx.parse, ctx.pose.keypoints
        if self.category == "upper_body":
            self._check_agnostic_pose(ctx)
            ctx.agn, ctx.agn_mask = agn.agnostic_image_and_mask(image, parse, kp.pose)
            ctx.parse_agn = agn.parse_agnostic(parse, kp.pose)
            ctx.gt_cloth_warped_mask = agn.gt_cloth_warped_mask(parse, self.GARMENT_LABELS[self.category],
                                                                agn_mask=ctx.agn_mask)
            derived = Producer("vitonprep-hrviton-agnostic", note="HR-VITON geometry on the parse and keypoints")
            inputs = self.INPUTS
        else:
            ctx.agn, ctx.agn_mask, ctx.parse_agn, ctx.gt_cloth_warped_mask = category_maps(
                image, parse, kp, self.category)
            derived = Producer("vitonprep-idm-mask", note=f"IDM-VTON get_mask_location('hd', '{self.category}') "
                               "bounded by the hem, shoes, hands and face")
            inputs = self.CATEGORY_INPUTS
        ctx.pose_render = render_pose(kp, (image.shape[1], image.shape[0]))
        rendered = Producer("vitonprep-render-pose")
        for name in self.writes:
            made_by = rendered if name == "pose_render" else derived
            approximate = any(ctx.producers[src].approximate for src in inputs[name])
            ctx.producers[name] = Producer(made_by.backend, approximate, made_by.note)

    @staticmethod
    def _check_agnostic_pose(ctx: SampleContext) -> None:
        """The pose conditions HR-VITON's agnostic needs, as a sample failure (the photo's fault, not the code's)."""
        pose = ctx.pose.keypoints.pose
        for i, joint in _AGNOSTIC_JOINTS:
            if pose[i, 0] == 0 and pose[i, 1] == 0:
                raise SampleError("derive", f"agnostic needs the {joint} (BODY_25 joint {i}); it is missing",
                                  ctx.item.person)
        if pose[9, 0] == pose[12, 0] and pose[9, 1] == pose[12, 1]:
            raise SampleError("derive", "agnostic: hip width is 0 (joints 9 and 12 coincide)", ctx.item.person)
