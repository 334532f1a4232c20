"""Keypoints as the checks read them: present joints, the torso frame, points sampled along a chain of joints."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vitonprep.derive.body25 import BODY25_NAMES, OpenPoseKeypoints

__all__ = ["J", "Body", "body_from_pose", "chain_points", "labels_at"]

#: a keypoint coordinate further off than this (px) is garbage, not a point outside the photo
_FAR = 1e6

#: BODY_25 index by name
J = {name: i for i, name in enumerate(BODY25_NAMES)}


@dataclass(frozen=True, eq=False)
class Body:
    """One person's keypoints with presence decided once (``conf`` > the config's threshold)."""

    kp: OpenPoseKeypoints
    conf: float
    width: int
    height: int

    def __post_init__(self) -> None:
        # pose.json is untrusted: a point with a NaN/inf coordinate, or one so far off (1e30) that OpenCV cannot
        # draw it, is absent whatever its confidence (validate reports such body points as errors)
        def present_only(arr: np.ndarray) -> np.ndarray:
            bad = ~(np.isfinite(arr[:, :2]) & (np.abs(arr[:, :2]) <= _FAR)).all(axis=1)
            if not bad.any():
                return arr
            arr = arr.copy()
            arr[bad] = 0.0
            return arr
        kp = self.kp
        object.__setattr__(self, "kp", OpenPoseKeypoints(present_only(kp.pose), present_only(kp.face),
                                                         present_only(kp.hand_left), present_only(kp.hand_right)))

    def has(self, *names: str) -> bool:
        return all(self.kp.pose[J[n], 2] > self.conf for n in names)

    def xy(self, name: str) -> np.ndarray:
        return self.kp.pose[J[name], :2].astype(np.float64)

    def part_xy(self, part: str, idx: slice | list[int] | None = None) -> np.ndarray:
        """Present points of ``face``/``hand_left``/``hand_right`` (N x 2)."""
        arr = getattr(self.kp, part)
        if idx is not None:
            arr = arr[idx]
        return arr[arr[:, 2] > self.conf, :2].astype(np.float64)

    def in_frame(self, name: str) -> bool:
        x, y = self.xy(name)
        return self.has(name) and 0 <= x < self.width and 0 <= y < self.height

    def torso(self) -> tuple[np.ndarray, np.ndarray, float] | None:
        """(origin = neck, unit down vector, torso length) from neck -> mid-hip, or shoulder/hip midpoints."""
        if self.has("Neck", "MidHip"):
            top, bottom = self.xy("Neck"), self.xy("MidHip")
        elif self.has("RShoulder", "LShoulder", "RHip", "LHip"):
            top = (self.xy("RShoulder") + self.xy("LShoulder")) / 2
            bottom = (self.xy("RHip") + self.xy("LHip")) / 2
        else:
            return None
        v = bottom - top
        length = float(np.hypot(*v))
        if length < 1.0:
            return None
        return top, v / length, length

    def lateral(self, p: np.ndarray, frame: tuple[np.ndarray, np.ndarray, float]) -> float:
        """Signed distance across the body, in torso lengths: positive towards image-right of an upright body."""
        origin, down, length = frame
        across = np.array([down[1], -down[0]])
        return float(np.dot(p - origin, across) / length)


def body_from_pose(pose_json: dict, conf: float, width: int, height: int) -> Body:
    return Body(OpenPoseKeypoints.from_json_dict(pose_json), conf, width, height)


def chain_points(points: list[np.ndarray], step: float = 4.0, skip_start: float = 0.0) -> np.ndarray:
    """Points every ``step`` px along the polyline; ``skip_start`` drops that share of the first segment."""
    out = []
    for i, (a, b) in enumerate(zip(points[:-1], points[1:], strict=False)):
        n = max(2, int(np.hypot(*(b - a)) / step))
        t = np.linspace(skip_start if i == 0 else 0.0, 1.0, n)
        out.append(a[None] + t[:, None] * (b - a)[None])
    return np.concatenate(out) if out else np.zeros((0, 2))


def labels_at(labels: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Labels under the points that lie in the image (rounded to the pixel)."""
    h, w = labels.shape[:2]
    if len(pts) == 0:
        return np.zeros(0, labels.dtype)
    # compared as floats before the cast: a non-finite or huge coordinate (pose.json is untrusted) is simply out
    x, y = np.round(pts[:, 0]), np.round(pts[:, 1])
    ok = (x >= 0) & (x < w) & (y >= 0) & (y < h)
    return labels[y[ok].astype(int), x[ok].astype(int)]
