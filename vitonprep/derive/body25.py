"""OpenPose keypoint format: BODY_25 and COCO-18 joint orders, skeletons and render colours, the conversion
between them and the OpenPose 1.3 JSON schema (``pose.json``; docs/architecture.md, "Data contract").

BODY_25 inserts MidHip at index 8, so COCO-18 index i maps to BODY_25 index i for i < 8 and i + 1 after it
(``COCO18_TO_BODY25``): reading a BODY_25 array with COCO-18 indices silently shifts every joint below the neck.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

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
]

BODY25_NAMES: tuple[str, ...] = (
    "Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist",
    "MidHip", "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye",
    "REar", "LEar", "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel",
)

COCO18_NAMES: tuple[str, ...] = (
    "Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist",
    "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye", "REar", "LEar",
)

#: COCO-18 index i -> BODY_25 index (LaDI-VTON's posemap mapping; MidHip is BODY_25's 8).
COCO18_TO_BODY25: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)

#: BODY_25 limbs as drawn by OpenPose (joint A, joint B); a limb takes joint B's colour.
BODY25_PAIRS: tuple[tuple[int, int], ...] = (
    (1, 8), (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (8, 9), (9, 10), (10, 11),
    (8, 12), (12, 13), (13, 14), (1, 0), (0, 15), (15, 17), (0, 16), (16, 18),
    (14, 19), (19, 20), (14, 21), (11, 22), (22, 23), (11, 24),
)

#: OpenPose's per-joint BODY_25 render colours (RGB).
BODY25_COLOURS: np.ndarray = np.array([
    (255, 0, 85), (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0),
    (170, 255, 0), (85, 255, 0), (0, 255, 0), (255, 0, 0), (0, 255, 85),
    (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255),
    (255, 0, 170), (170, 0, 255), (255, 0, 255), (85, 0, 255), (0, 0, 255),
    (0, 0, 255), (0, 0, 255), (0, 255, 255), (0, 255, 255), (0, 255, 255),
], dtype=np.float32)

#: 21-point hand skeleton: wrist to each finger's four joints.
HAND_PAIRS: tuple[tuple[int, int], ...] = tuple(
    pair for f in range(5) for pair in
    ((0, 1 + 4 * f), (1 + 4 * f, 2 + 4 * f), (2 + 4 * f, 3 + 4 * f), (3 + 4 * f, 4 + 4 * f))
)

#: OpenPose hand render colours (RGB), one per hand joint.
HAND_COLOURS: np.ndarray = np.array([
    (100, 100, 100),
    (100, 0, 0), (150, 0, 0), (200, 0, 0), (255, 0, 0),
    (100, 100, 0), (150, 150, 0), (200, 200, 0), (255, 255, 0),
    (0, 100, 50), (0, 150, 75), (0, 200, 100), (0, 255, 125),
    (0, 50, 100), (0, 75, 150), (0, 100, 200), (0, 125, 255),
    (100, 0, 100), (150, 0, 150), (200, 0, 200), (255, 0, 255),
], dtype=np.float32)

def _as_kp(arr: Any, n: int, name: str) -> np.ndarray:
    a = np.asarray(arr, dtype=np.float32)
    if a.ndim == 1:
        if a.size != n * 3:
            raise ValueError(f"{name}: expected {n * 3} values, got {a.size}")
        a = a.reshape(n, 3)
    if a.shape == (n, 2):
        a = np.concatenate([a, (np.abs(a).sum(1, keepdims=True) > 0).astype(np.float32)], 1)
    if a.shape != (n, 3):
        raise ValueError(f"{name}: expected shape ({n}, 3), got {a.shape}")
    return np.ascontiguousarray(a)


def coco18_to_body25(kp18: np.ndarray) -> np.ndarray:
    """COCO-18 (18,3) -> BODY_25 (25,3) (LaDI-VTON's mapping).

    MidHip (8) = mean of RHip and LHip when both are present (confidence = min of the
    two); feet (19-24) are zero.
    """
    k = _as_kp(kp18, 18, "kp18")
    out = np.zeros((25, 3), np.float32)
    out[list(COCO18_TO_BODY25)] = k
    rhip, lhip = out[9], out[12]
    if rhip[2] > 0 and lhip[2] > 0 and rhip[:2].any() and lhip[:2].any():
        out[8, :2] = (rhip[:2] + lhip[:2]) / 2.0
        out[8, 2] = min(rhip[2], lhip[2])
    return out


def body25_to_coco18(kp25: np.ndarray) -> np.ndarray:
    """BODY_25 (25,3) -> COCO-18 (18,3) (drops MidHip and feet)."""
    k = _as_kp(kp25, 25, "kp25")
    return k[list(COCO18_TO_BODY25)].copy()


def _json_number(v: np.float32) -> float | int:
    # Shortest decimal that round-trips through float32: values read from an OpenPose
    # JSON (<= 7 significant digits) are written back exactly; zeros are written as 0.
    if v == 0:
        return 0
    return float(str(np.float32(v)))


@dataclass(frozen=True, eq=False)
class OpenPoseKeypoints:
    """One person's OpenPose output (pixel coordinates, missing joints = 0,0,0)."""

    pose: np.ndarray                                   # (25, 3) BODY_25
    face: np.ndarray = field(default_factory=lambda: np.zeros((70, 3), np.float32))
    hand_left: np.ndarray = field(default_factory=lambda: np.zeros((21, 3), np.float32))
    hand_right: np.ndarray = field(default_factory=lambda: np.zeros((21, 3), np.float32))

    def __post_init__(self) -> None:
        object.__setattr__(self, "pose", _as_kp(self.pose, 25, "pose"))
        object.__setattr__(self, "face", _as_kp(self.face, 70, "face"))
        object.__setattr__(self, "hand_left", _as_kp(self.hand_left, 21, "hand_left"))
        object.__setattr__(self, "hand_right", _as_kp(self.hand_right, 21, "hand_right"))

    def to_json_dict(self) -> dict:
        """OpenPose 1.3 JSON schema with one person (75 / 210 / 63 / 63 values)."""
        def flat(a: np.ndarray) -> list:
            return [_json_number(v) for v in a.ravel()]

        return {
            "version": 1.3,
            "people": [{
                "person_id": [-1],
                "pose_keypoints_2d": flat(self.pose),
                "face_keypoints_2d": flat(self.face),
                "hand_left_keypoints_2d": flat(self.hand_left),
                "hand_right_keypoints_2d": flat(self.hand_right),
                "pose_keypoints_3d": [],
                "face_keypoints_3d": [],
                "hand_left_keypoints_3d": [],
                "hand_right_keypoints_3d": [],
            }],
        }

    @classmethod
    def from_json_dict(cls, d: Mapping[str, Any], person: int = 0) -> "OpenPoseKeypoints":
        """Parse an OpenPose JSON dict (BODY_25 with 75 values or COCO-18 with 54).

        Missing or empty face/hand arrays are zero-filled. Raises ValueError when there
        is no such person or an array has the wrong length.
        """
        people = d.get("people") if isinstance(d, Mapping) else None
        if not people:
            raise ValueError("OpenPose JSON has no people (nobody detected)")
        if not 0 <= person < len(people):
            raise ValueError(f"OpenPose JSON has {len(people)} people, person {person} requested")
        p = people[person]
        pose = p.get("pose_keypoints_2d", p.get("pose_keypoints"))
        if pose is None:
            raise ValueError("OpenPose JSON person has no pose_keypoints_2d")
        pose = np.asarray(pose, dtype=np.float32).ravel()
        if pose.size == 75:
            pose25 = pose.reshape(25, 3)
        elif pose.size == 54:
            pose25 = coco18_to_body25(pose.reshape(18, 3))
        else:
            raise ValueError(
                f"pose_keypoints_2d has {pose.size} values; expected 75 (BODY_25) or 54 (COCO-18)")

        def part(key: str, n: int) -> np.ndarray:
            v = p.get(key, p.get(key.replace("_2d", "")))
            if v is None or len(v) == 0:
                return np.zeros((n, 3), np.float32)
            a = np.asarray(v, dtype=np.float32).ravel()
            if a.size != n * 3:
                raise ValueError(f"{key} has {a.size} values; expected {n * 3}")
            return a.reshape(n, 3)

        return cls(pose25, part("face_keypoints_2d", 70), part("hand_left_keypoints_2d", 21),
                   part("hand_right_keypoints_2d", 21))

    def coco18_view(self, scale_to: tuple[int, int] = (384, 512),
                    from_size: tuple[int, int] = (768, 1024)) -> dict:
        """IDM-VTON / OOTDiffusion style ``{"pose_keypoints_2d": [[x, y] x 18]}``.

        Sizes are (width, height); missing joints stay [0, 0].
        """
        k = body25_to_coco18(self.pose)
        sx = scale_to[0] / from_size[0]
        sy = scale_to[1] / from_size[1]
        pts = []
        for x, y, c in k:
            if c <= 0 and x == 0 and y == 0:
                pts.append([0.0, 0.0])
            else:
                pts.append([float(x) * sx, float(y) * sy])
        return {"pose_keypoints_2d": pts}
