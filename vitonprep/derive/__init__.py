"""Derived VITON-HD modalities: label maps, OpenPose, agnostic images/masks, DensePose
rendering and IDM-VTON / DressCode masks. Pure functions on numpy arrays."""

from .agnostic import agnostic_image, agnostic_mask, gt_cloth_warped_mask, parse_agnostic
from .body25 import (
    BODY25_NAMES,
    COCO18_NAMES,
    COCO18_TO_BODY25,
    OpenPoseKeypoints,
    body25_to_coco18,
    coco18_to_body25,
)
from .densepose import PARULA_RGB, parts_from_densepose_image, render_densepose
from .labels import (
    ATR_LABELS,
    CIHP_LABELS,
    CIHP_PALETTE,
    HRVITON_GROUPS,
    LIP_LABELS,
    atr_to_cihp,
    cihp_to_atr,
    labels_to_palette_image,
    lip_to_cihp,
    palette_image_to_labels,
    synthesise_neck,
    to_hrviton_groups,
)
from .masks_idm import cihp_to_idm_parse, dresscode_mask, get_mask_location
from .pose_from_render import keypoints_from_render
from .pose_render import render_pose

__all__ = [
    "ATR_LABELS", "BODY25_NAMES", "CIHP_LABELS", "CIHP_PALETTE", "COCO18_NAMES",
    "COCO18_TO_BODY25", "HRVITON_GROUPS", "LIP_LABELS", "OpenPoseKeypoints", "PARULA_RGB",
    "agnostic_image", "agnostic_mask", "atr_to_cihp", "body25_to_coco18", "cihp_to_atr",
    "cihp_to_idm_parse", "coco18_to_body25", "dresscode_mask", "get_mask_location",
    "gt_cloth_warped_mask", "keypoints_from_render", "labels_to_palette_image",
    "lip_to_cihp", "palette_image_to_labels", "parse_agnostic", "parts_from_densepose_image",
    "render_densepose", "render_pose", "synthesise_neck", "to_hrviton_groups",
]
