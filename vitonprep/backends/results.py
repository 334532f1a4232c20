"""Result types shared by the model back-ends (pose, person checks).

These are plain frozen dataclasses so that results can be pickled between worker processes. Arrays are
not compared by ``==`` (``eq=False``): compare their fields with numpy when needed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vitonprep.derive.body25 import OpenPoseKeypoints
from vitonprep.errors import NoPersonError  # raised by the pose/person back-ends; importers find it here too

__all__ = ["NoPersonError", "PoseResult", "PersonCheck", "CUT_OFF_SIDES"]

#: Possible entries of :attr:`PersonCheck.cut_off`, in the order they are reported.
CUT_OFF_SIDES: tuple[str, ...] = ("head", "feet", "left", "right")


@dataclass(frozen=True, eq=False)
class PoseResult:
    """Keypoints of one person plus the raw model outputs they were derived from.

    ``keypoints``: OpenPose-layout BODY_25 / face-70 / hand-21 arrays in pixels, missing = (0, 0, 0).
    ``landmarks``: (33, 4) BlazePose landmarks: x, y in pixels, z (BlazePose depth, scaled like x, origin at
    the hip midpoint, smaller = closer to the camera), visibility 0..1. ``None`` if not kept.
    ``person_mask``: H x W float32 in 0..1, the BlazePose segmentation of this person, or ``None`` when
    segmentation is off.
    ``notes``: what the back-end corrected or could not decide about this photo (e.g. a mirrored skeleton), for the
    pose stage to log with the file's name, which the back-end does not know.
    """

    keypoints: OpenPoseKeypoints
    landmarks: np.ndarray | None = None
    person_mask: np.ndarray | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class PersonCheck:
    """Framing checks of a photo that should show exactly one person.

    ``num_persons``: persons found (faces and large separate silhouette blobs, whichever says more).
    ``person_box``: (x0, y0, x1, y1) pixel box of the main person, x1/y1 exclusive; ``None`` if nobody.
    ``person_height_frac``: box height / image height (0.0 if nobody).
    ``cut_off``: body ends that leave the frame, a subset of ``CUT_OFF_SIDES`` in that order: ``"head"``
    (top of the head or face outside the top edge), ``"feet"`` (feet below the bottom edge; normal for the
    VITON-HD upper-body framing), ``"left"`` / ``"right"`` (silhouette running out of the image's left /
    right edge).
    """

    num_persons: int
    person_box: tuple[int, int, int, int] | None
    person_height_frac: float
    cut_off: tuple[str, ...]
