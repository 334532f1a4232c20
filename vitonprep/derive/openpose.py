"""Compatibility re-export: the OpenPose helpers now live in three modules.

``vitonprep.derive.body25`` (keypoint format: BODY_25 / COCO-18, ``OpenPoseKeypoints``, the JSON schema),
``vitonprep.derive.pose_render`` (``render_pose``) and ``vitonprep.derive.pose_from_render``
(``keypoints_from_render``). This module keeps the old import path working for the many modules and tests that
import these names from ``vitonprep.derive.openpose``; new code imports from the three modules.
"""

from __future__ import annotations

from vitonprep.derive.body25 import (
                                     BODY25_COLOURS,
                                     BODY25_NAMES,
                                     BODY25_PAIRS,
                                     COCO18_NAMES,
                                     COCO18_TO_BODY25,
                                     HAND_COLOURS,
                                     HAND_PAIRS,
                                     OpenPoseKeypoints,
                                     body25_to_coco18,
                                     coco18_to_body25,
)
from vitonprep.derive.pose_from_render import keypoints_from_render
from vitonprep.derive.pose_render import render_pose

__all__ = [
    "BODY25_NAMES",
    "COCO18_NAMES",
    "COCO18_TO_BODY25",
    "BODY25_PAIRS",
    "BODY25_COLOURS",
    "HAND_PAIRS",
    "HAND_COLOURS",
    "coco18_to_body25",
    "body25_to_coco18",
    "OpenPoseKeypoints",
    "render_pose",
    "keypoints_from_render",
]
