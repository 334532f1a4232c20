"""Skeleton sanity on the BODY_25 pose alone, or against the face/hand keypoints and the parse's arm sides.

Evidence independent of the order being judged: the face landmarks and hand keypoints are detected on their own
crops (OpenPose's face/hand nets, BlazePose's face and hand models), and CIHP's Left-arm/Right-arm come from the
parser.
"""

from __future__ import annotations

import cv2
import numpy as np

from vitonprep.quality.config import QualityConfig
from vitonprep.quality.geometry import Body
from vitonprep.quality.report import Outcome

__all__ = ["orientation", "left_right", "hip_shoulder_ratio", "bone_length", "crossing_limbs"]

#: anatomical bone length as a fraction of the neck -> mid-hip length (Drillis & Contini's segment table:
#: upper arm 0.186 H, forearm 0.146 H, thigh 0.245 H, shank 0.246 H, neck -> hip about 0.288 H)
_BONES = (("RShoulder", "RElbow", 0.65), ("RElbow", "RWrist", 0.51), ("LShoulder", "LElbow", 0.65),
          ("LElbow", "LWrist", 0.51), ("RHip", "RKnee", 0.85), ("RKnee", "RAnkle", 0.85),
          ("LHip", "LKnee", 0.85), ("LKnee", "LAnkle", 0.85))

#: OpenPose's 70 face points: 36-41 are the person's right eye, 42-47 the left one
_FACE_REYE, _FACE_LEYE = slice(36, 42), slice(42, 48)


def orientation(body: Body, cfg: QualityConfig) -> Outcome | None:
    """Cosine between the torso (neck -> mid-hip, else nose -> neck) and image-down."""
    frame = body.torso()
    if frame is not None:
        down = frame[1]
    elif body.has("Nose", "Neck"):
        v = body.xy("Neck") - body.xy("Nose")
        if np.hypot(*v) < 1:
            return None
        down = v / np.hypot(*v)
    else:
        return None
    cos = float(down[1])
    if cos >= cfg.min_upright_cosine:
        return Outcome("orientation", cos)
    angle = float(np.degrees(np.arctan2(-down[0], down[1])))
    what = "upside down" if cos < -0.7 else "sideways"
    return Outcome("orientation", cos, f"the body is {what} (torso {angle:+.0f} deg from vertical): a rotated "
                                       "photo or a wrong skeleton")


def _nearer(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.hypot(*(p - a)) < np.hypot(*(p - b)))


def left_right(body: Body, parse: np.ndarray | None, cfg: QualityConfig) -> Outcome | None:
    """Share of left/right evidences that agree with the order of the shoulders."""
    frame = body.torso()
    if frame is None or not body.has("RShoulder", "LShoulder"):
        return None
    sh = body.lateral(body.xy("LShoulder"), frame) - body.lateral(body.xy("RShoulder"), frame)
    if abs(sh) < cfg.min_lateral_spread:
        return None
    votes: list[tuple[str, bool]] = []

    def spread(right: str, left: str) -> float | None:
        if not body.has(right, left):
            return None
        d = body.lateral(body.xy(left), frame) - body.lateral(body.xy(right), frame)
        return d if abs(d) >= cfg.min_lateral_spread else None

    for name, (r, lt) in (("hips", ("RHip", "LHip")), ("eyes", ("REye", "LEye")), ("ears", ("REar", "LEar"))):
        d = spread(r, lt)
        if d is not None:
            votes.append((name, (d > 0) == (sh > 0)))
    # a visible face (nose and both eyes) faces the camera: the person's right shoulder is on the image left
    if body.has("Nose", "REye", "LEye"):
        votes.append(("a face towards the camera", sh > 0))
    reye, leye = body.part_xy("face", _FACE_REYE), body.part_xy("face", _FACE_LEYE)
    if body.has("REye", "LEye") and len(reye) >= 3 and len(leye) >= 3:
        votes.append(("the face landmarks' eyes", _nearer(body.xy("REye"), reye.mean(0), leye.mean(0))))
    if body.has("RWrist", "LWrist"):
        for hand, near, far in (("hand_right", "RWrist", "LWrist"), ("hand_left", "LWrist", "RWrist")):
            pts = body.part_xy(hand, [0])
            if len(pts) and np.hypot(*(body.xy(near) - body.xy(far))) > 0.1 * frame[2]:
                votes.append((f"the {hand.replace('_', ' ')} keypoints", _nearer(pts[0], body.xy(near), body.xy(far))))
    if parse is not None and body.has("RElbow", "LElbow"):
        for label, near, far, text in ((15, "RElbow", "LElbow", "Right-arm"), (14, "LElbow", "RElbow", "Left-arm")):
            # a quarter of the size: a centroid compared with two elbows needs no finer grid
            m = cv2.moments((parse[::4, ::4] == label).view(np.uint8), binaryImage=True)
            if m["m00"] >= 32:  # 500 px at full size
                c = 4 * np.array([m["m10"] / m["m00"], m["m01"] / m["m00"]])
                votes.append((f"the parse's {text}", _nearer(c, body.xy(near), body.xy(far))))
    if not votes:
        return None
    score = sum(ok for _, ok in votes) / len(votes)
    if score >= cfg.min_left_right_agreement:
        return Outcome("left_right", score)
    against = ", ".join(name for name, ok in votes if not ok)
    return Outcome("left_right", score, f"left/right joints mirrored: the shoulders' order disagrees with {against}")


def hip_shoulder_ratio(body: Body, cfg: QualityConfig) -> Outcome | None:
    """Hip-joint width / shoulder width (distances, so a turned body keeps its ratio)."""
    frame = body.torso()
    if frame is None or not body.has("RShoulder", "LShoulder", "RHip", "LHip"):
        return None
    sw = float(np.hypot(*(body.xy("LShoulder") - body.xy("RShoulder"))))
    hw = float(np.hypot(*(body.xy("LHip") - body.xy("RHip"))))
    if sw < 0.25 * frame[2]:  # a side view: both widths are noise
        return None
    ratio = hw / sw
    if ratio >= cfg.min_hip_shoulder_ratio:
        return Outcome("hip_shoulder_ratio", ratio)
    return Outcome("hip_shoulder_ratio", ratio, f"hips collapsed: {hw:.0f} px apart under shoulders {sw:.0f} px "
                                                "apart")


def bone_length(body: Body, cfg: QualityConfig) -> Outcome | None:
    """Longest bone over its anatomical length (both as fractions of the torso)."""
    frame = body.torso()
    if frame is None:
        return None
    worst, what = 0.0, ""
    for a, b, expected in _BONES:
        if body.has(a, b):
            r = float(np.hypot(*(body.xy(b) - body.xy(a)))) / frame[2] / expected
            if r > worst:
                worst, what = r, f"{a}-{b}"
    if not what:
        return None
    if worst <= cfg.max_bone_ratio:
        return Outcome("bone_length", worst)
    return Outcome("bone_length", worst, f"bone {what} is {worst:.1f} times its anatomical length for this torso")


def _cross(p1: np.ndarray, p2: np.ndarray, q1: np.ndarray, q2: np.ndarray) -> bool:
    def orient(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
        return float((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]))

    return (orient(p1, p2, q1) * orient(p1, p2, q2) < 0) and (orient(q1, q2, p1) * orient(q1, q2, p2) < 0)


def crossing_limbs(body: Body, cfg: QualityConfig) -> Outcome | None:
    """How many of (thighs, upper arms) cross each other."""
    pairs = ((("RHip", "RKnee"), ("LHip", "LKnee"), "thighs"),
             (("RShoulder", "RElbow"), ("LShoulder", "LElbow"), "upper arms"))
    seen, crossed = 0, []
    for (a1, a2), (b1, b2), name in pairs:
        if body.has(a1, a2, b1, b2):
            seen += 1
            if _cross(body.xy(a1), body.xy(a2), body.xy(b1), body.xy(b2)):
                crossed.append(name)
    if not seen:
        return None
    if len(crossed) <= cfg.max_crossing_limbs:
        return Outcome("crossing_limbs", float(len(crossed)))
    return Outcome("crossing_limbs", float(len(crossed)), f"the {' and the '.join(crossed)} cross: left and right "
                                                          "joints swapped on one side")
