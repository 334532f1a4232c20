"""Left/right of a BlazePose skeleton checked against the face (docs/pose.md, "Mirrored bodies").

BlazePose names left and right from the body's appearance and sometimes takes a frontal body for a back view:
every left landmark then sits where the right one belongs. FaceMesh, run on its own crop of the head, names the
eyes independently; a frontal face whose eyes say "the person's left is on the image's right" contradicts a body
whose shoulders and hips say the opposite. When the face and both body parts are clear (eyes, shoulders and hips
each far enough apart to tell their order) and the body disagrees with the face, the body's landmark pairs are
swapped (``corrected``); BlazePose's own eyes and ears are swapped the same way when they disagree with FaceMesh.
When the evidence conflicts (shoulders against hips), or the shoulders contradict the face but lie too close
together to tell (a collapsed or side-on skeleton), nothing is changed and the result says ``unclear``. No face
(a back view, a cropped head, a face too small for FaceMesh): no check (``unchecked``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Orientation", "BODY_PAIRS", "HEAD_PAIRS", "check_orientation"]

#: BlazePose (left, right) landmark pairs of the body (shoulders down) and of the head.
BODY_PAIRS: tuple[tuple[int, int], ...] = tuple((i, i + 1) for i in range(11, 33, 2))
HEAD_PAIRS: tuple[tuple[int, int], ...] = ((2, 5), (1, 4), (3, 6), (7, 8), (9, 10))
#: A pair's order is clear when its horizontal gap is at least this share of the torso length (shoulders,
#: hips) or of the pair's own length (eyes).
_BODY_GAP = 0.3  # frontal shoulders span 0.57-0.74 T on the fit photos (docs/pose.md); 0.3 T is a turned body
_EYE_GAP = 0.5


@dataclass(frozen=True)
class Orientation:
    status: str  # "ok" | "corrected" | "unclear" | "unchecked"
    reason: str = ""


def _order(left: np.ndarray, right: np.ndarray, gap: float) -> int:
    """+1 when the person's left point lies clearly to the image right of the right one, -1 the opposite, 0 unclear."""
    dx = float(left[0] - right[0])
    return 0 if abs(dx) < gap else (1 if dx > 0 else -1)


def check_orientation(landmarks: np.ndarray, face70: np.ndarray) -> tuple[np.ndarray, Orientation]:
    """(landmarks, possibly with left/right swapped, and what was decided). ``face70``: OpenPose face points of
    FaceMesh (zeros when no face was found)."""
    lm = np.asarray(landmarks, dtype=np.float32)
    f = np.asarray(face70, dtype=np.float64)
    if f.shape != (70, 3) or f[36, 2] <= 0 or f[45, 2] <= 0:
        return lm, Orientation("unchecked", "no face")
    eyes = float(np.linalg.norm(f[45, :2] - f[36, :2]))
    face = _order(f[45, :2], f[36, :2], _EYE_GAP * eyes)  # 45: left eye outer corner, 36: right
    torso = float(np.linalg.norm((lm[23, :2] + lm[24, :2]) / 2 - (lm[11, :2] + lm[12, :2]) / 2))
    sho = _order(lm[11, :2], lm[12, :2], _BODY_GAP * torso)
    hip = _order(lm[23, :2], lm[24, :2], _BODY_GAP * torso)
    head = _order(lm[2, :2], lm[5, :2], _EYE_GAP * float(np.linalg.norm(lm[2, :2] - lm[5, :2])))
    if face == 0:
        if sho and head and sho != head:
            return lm, Orientation("unclear", "BlazePose's head and shoulders disagree on left/right; the face "
                                              "is turned too far to decide")
        return lm, Orientation("ok")
    out = lm.copy()
    notes = []
    body = sho if sho == hip or hip == 0 else (hip if sho == 0 else None)
    if body is None:
        return lm, Orientation("unclear", "shoulders and hips disagree on left/right")
    if body == 0 and _order(lm[11, :2], lm[12, :2], 0.0) == -face:
        return lm, Orientation("unclear", "the shoulders' order contradicts the face but they are too close "
                                          "together to tell (a collapsed or side-on skeleton)")
    if body and body != face:
        for a, b in BODY_PAIRS:
            out[[a, b]] = out[[b, a]]
        notes.append("body left/right swapped to agree with the face")
    if head and head != face:
        for a, b in HEAD_PAIRS:
            out[[a, b]] = out[[b, a]]
        notes.append("BlazePose's eyes and ears swapped to agree with the face")
    if notes:
        return out, Orientation("corrected", "; ".join(notes))
    return lm, Orientation("ok")
