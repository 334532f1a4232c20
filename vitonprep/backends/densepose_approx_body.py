"""The body model behind `densepose_approx`: BODY_25/CIHP/DensePose indices, tuning constants, input checks, the
skeleton (with synthesised joints) and the vectorised point-to-segment geometry its region rules use.

Internal to `vitonprep.backends.densepose_approx` (split from it to keep each module readable); the names keep
their leading underscore because nothing else should use them.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from vitonprep.errors import InputError

logger = logging.getLogger(__name__)

# BODY_25 indices (OpenPose ``poseParameters.cpp``, BODY_25 part order).
_NOSE, _NECK, _RSHO, _RELB, _RWRI, _LSHO, _LELB, _LWRI = 0, 1, 2, 3, 4, 5, 6, 7
_MIDHIP, _RHIP, _RKNE, _RANK, _LHIP, _LKNE, _LANK = 8, 9, 10, 11, 12, 13, 14
_REYE, _LEYE, _REAR, _LEAR = 15, 16, 17, 18

# CIHP labels (the 20 classes of the CIHP dataset, as in VITON-HD's image-parse-v3).
_HAT, _HAIR, _GLOVE, _SUNGLASSES, _UPPER, _DRESS, _COAT, _SOCKS, _PANTS = 1, 2, 3, 4, 5, 6, 7, 8, 9
_NECK_SKIN, _SCARF, _SKIRT, _FACE, _LARM, _RARM, _LLEG, _RLEG, _LSHOE, _RSHOE = (
    10, 11, 12, 13, 14, 15, 16, 17, 18, 19)

# DensePose part indices.
_TORSO = 2
_RHAND, _LHAND, _LFOOT, _RFOOT = 3, 4, 5, 6
_ULEG = {"R": 9, "L": 10}
_LLEG_PART = {"R": 13, "L": 14}
_UARM_IN = {"R": 16, "L": 15}
_UARM_OUT = {"R": 18, "L": 17}
_LARM_IN = {"R": 20, "L": 19}
_LARM_OUT = {"R": 22, "L": 21}
_HAND = {"R": _RHAND, "L": _LHAND}
_HEAD_R, _HEAD_L = 23, 24

# Tuning constants; lengths are fractions of the body scale (shoulder width) unless noted.
_HAIR_KEEP_DEPTH = 0.066  # hair/hat kept only this far inside the person silhouette
_NECK_HEAD_DIST = 0.15  # neck skin this close to the face belongs to the head
_ARM_MARGIN = 0.0  # a sleeve pixel is arm if d(arm chain) < d(torso quad) + margin
_PELVIS_LATERAL = 0.0  # pelvis boundary below the hip line at/after the hip joints (x hip width)
_PELVIS_MEDIAL = 0.30  # extra depth of the boundary's V at the body midline (x hip width)
_HAND_T = 1.0  # position along elbow->wrist beyond which a pixel is hand
_FG_SHRINK = 1.0 / 256.0  # foreground erosion radius as a fraction of the image height
_THIGH = 0.8  # synthetic knee/ankle distance as a fraction of the neck-midhip length
_FOREARM = 0.9  # synthetic wrist distance as a fraction of the upper-arm length

# ---------------------------------------------------------------------------------------------------------------
# input checks


def _check_parse(parse: np.ndarray) -> np.ndarray:
    parse = np.asarray(parse)
    if parse.ndim != 2:
        raise ValueError(f"parse must be a 2-D label map, got shape {parse.shape}")
    if parse.size == 0:
        raise ValueError("parse is empty (zero-size array)")
    if not np.issubdtype(parse.dtype, np.integer):
        raise ValueError(f"parse must have an integer dtype, got {parse.dtype}")
    lo = 0 if np.issubdtype(parse.dtype, np.unsignedinteger) else int(parse.min())
    hi = int(parse.max())
    if lo < 0 or hi > 19:
        raise ValueError(f"parse must hold CIHP labels 0..19, got values in [{lo}, {hi}]")
    return parse.astype(np.uint8, copy=False)


def _check_pose(pose25: np.ndarray) -> np.ndarray:
    pose = np.asarray(pose25, dtype=np.float64)
    if pose.shape != (25, 3):
        raise ValueError(f"pose25 must have shape (25, 3) as BODY_25 (x, y, confidence), got {pose.shape}")
    if not np.isfinite(pose).all():
        raise ValueError("pose25 contains NaN or infinite values")
    return pose


# ---------------------------------------------------------------------------------------------------------------
# skeleton with synthesised joints


class _Skeleton:
    """BODY_25 joints with the missing ones needed for the part split synthesised (upright person)."""

    def __init__(self, pose: np.ndarray, valid: np.ndarray, person: np.ndarray) -> None:
        p = {i: pose[i, :2].astype(np.float64) for i in range(25) if valid[i]}
        self.valid = valid
        self.p = p
        have = p.__contains__

        # body scale: shoulder width, else hip width / 0.7, else a quarter of the person's height
        if have(_RSHO) and have(_LSHO) and _norm(p[_LSHO] - p[_RSHO]) > 1:
            scale = _norm(p[_LSHO] - p[_RSHO])
        elif have(_RHIP) and have(_LHIP) and _norm(p[_LHIP] - p[_RHIP]) > 1:
            scale = _norm(p[_LHIP] - p[_RHIP]) / 0.7
        else:
            rows = np.flatnonzero(person.any(axis=1))
            scale = 0.25 * float(rows[-1] - rows[0] + 1)
        self.scale = max(scale, 4.0)

        neck = p.get(_NECK)
        if neck is None and have(_RSHO) and have(_LSHO):
            neck = (p[_RSHO] + p[_LSHO]) / 2
        midhip = p.get(_MIDHIP)
        if midhip is None and have(_RHIP) and have(_LHIP):
            midhip = (p[_RHIP] + p[_LHIP]) / 2
        if neck is None and midhip is None:
            raise InputError("pose25 lacks the joints that place the torso (neck, both shoulders or both hips)")

        if neck is not None and midhip is not None and _norm(midhip - neck) > 1:
            down = (midhip - neck) / _norm(midhip - neck)
            torso_len = _norm(midhip - neck)
        else:
            down = np.array([0.0, 1.0])
            torso_len = 1.6 * self.scale
            if midhip is None:
                midhip = neck + down * torso_len
            else:
                neck = midhip - down * torso_len
        self.down = down
        self.torso_len = torso_len
        # person's right -> left direction; for a frontal person it points to the image right
        if have(_RSHO) and have(_LSHO) and _norm(p[_LSHO] - p[_RSHO]) > 1:
            lat = (p[_LSHO] - p[_RSHO]) / _norm(p[_LSHO] - p[_RSHO])
        elif have(_RHIP) and have(_LHIP) and _norm(p[_LHIP] - p[_RHIP]) > 1:
            lat = (p[_LHIP] - p[_RHIP]) / _norm(p[_LHIP] - p[_RHIP])
        else:
            lat = np.array([-down[1], down[0]])
            lat = lat if lat[0] >= 0 else -lat
        if lat[0] < 0:
            logger.warning("shoulders/hips are mirrored (back view?); frontal part indices are used anyway")
        self.lat = lat
        self.neck = neck
        self.midhip = midhip

        self.sho = {"R": p.get(_RSHO, neck - lat * self.scale / 2), "L": p.get(_LSHO, neck + lat * self.scale / 2)}
        hip_w = _norm(p[_LHIP] - p[_RHIP]) if have(_RHIP) and have(_LHIP) else 0.0
        if hip_w <= 1:
            hip_w = 0.7 * self.scale
        self.hip_w = hip_w
        self.hip = {"R": p.get(_RHIP, midhip - lat * hip_w / 2), "L": p.get(_LHIP, midhip + lat * hip_w / 2)}

        self._arm = {}
        self.real_wrist = {}
        for side, (e, wr) in (("R", (_RELB, _RWRI)), ("L", (_LELB, _LWRI))):
            s = self.sho[side]
            elb = p.get(e)
            wri = p.get(wr)
            if elb is None:
                elb = (s + wri) / 2 if wri is not None else s + down * 0.55 * torso_len
            if wri is None:
                wri = elb + (elb - s) * _FOREARM if _norm(elb - s) > 1 else elb + down * 0.5 * torso_len
            self._arm[side] = (s, elb, wri)
            self.real_wrist[side] = have(wr)

        self._leg = {}
        for side, (k, a) in (("R", (_RKNE, _RANK)), ("L", (_LKNE, _LANK))):
            hp = self.hip[side]
            kn = p.get(k)
            an = p.get(a)
            if kn is None:
                kn = (hp + an) / 2 if an is not None else hp + down * _THIGH * torso_len
            if an is None:
                d = kn - hp
                an = kn + (d / _norm(d) if _norm(d) > 1 else down) * _THIGH * torso_len
            self._leg[side] = (hp, kn, an)

    def arm(self, side: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self._arm[side]

    def leg(self, side: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self._leg[side]

    def torso_quad(self) -> np.ndarray:
        return np.array([self.sho["R"], self.sho["L"], self.hip["L"], self.hip["R"]])


def _isin(labels: np.ndarray, values: tuple[int, ...]) -> np.ndarray:
    """Fast `np.isin` for uint8 label arrays (a 256-entry lookup table; cv2.LUT for 2-D maps)."""
    lut = np.zeros(256, np.uint8)
    lut[list(values)] = 1
    if labels.ndim == 2 and labels.size:
        return cv2.LUT(labels, lut).view(bool)
    return np.take(lut, labels).view(bool)


def _rows_cols(flat: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of flat indices into a C-contiguous map ``width`` wide (with `np.flatnonzero`, the
    same arrays as `np.nonzero` of the map, which is several times slower on 2-D arrays)."""
    rows = flat // width
    return rows, flat - rows * width


def _norm(v: np.ndarray) -> float:
    return float(np.hypot(v[0], v[1]))


# ---------------------------------------------------------------------------------------------------------------
# geometry helpers (vectorised over pixel coordinate arrays)


def _segment(px: np.ndarray, py: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance from points to segment ab and the unclamped projection parameter t (0 at a, 1 at b)."""
    dx, dy = float(b[0] - a[0]), float(b[1] - a[1])
    ax, ay = float(a[0]), float(a[1])
    ll = dx * dx + dy * dy
    if ll < 1e-9:
        return np.hypot(px - ax, py - ay), np.zeros_like(px)
    t = ((px - ax) * dx + (py - ay) * dy) / ll
    tc = np.clip(t, 0.0, 1.0)
    return np.hypot(px - (ax + tc * dx), py - (ay + tc * dy)), t


def _chain_distance(px: np.ndarray, py: np.ndarray, chain: tuple[np.ndarray, ...]) -> np.ndarray:
    d1, _ = _segment(px, py, chain[0], chain[1])
    d2, _ = _segment(px, py, chain[1], chain[2])
    return np.minimum(d1, d2)



def _torso_edge_distance(px: np.ndarray, py: np.ndarray, sk: _Skeleton) -> np.ndarray:
    """Distance (px) from points to the outline of the shoulder-hip quadrilateral."""
    quad = sk.torso_quad()
    d = np.full(px.shape, np.inf, np.float32)
    for i in range(4):
        d = np.minimum(d, _segment(px, py, quad[i], quad[(i + 1) % 4])[0])
    return d


def _torso_quad_map(sk: _Skeleton, origin: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """HxW uint8 map of a crop (``origin`` = (x0, y0) in the image), 1 inside the filled shoulder-hip
    quadrilateral (cv2.fillPoly of the rounded corners; integer translation is exact)."""
    quad = np.round(sk.torso_quad()).astype(np.int32) - np.array(origin, np.int32)
    inside = np.zeros(shape, np.uint8)
    cv2.fillPoly(inside, [quad.reshape(-1, 1, 2)], 1)
    return inside


class _ArmDistances:
    """Distances of points to one arm's upper (shoulder-elbow) and lower (elbow-wrist) segments."""

    def __init__(self, px: np.ndarray, py: np.ndarray, sk: _Skeleton, side: str) -> None:
        s, e, w = sk.arm(side)
        self.side = side
        self.real_wrist = sk.real_wrist[side]
        self.d1, _ = _segment(px, py, s, e)
        self.d2, self.t2 = _segment(px, py, e, w)
        self.chain = np.minimum(self.d1, self.d2)

    def parts(self, sel: np.ndarray) -> np.ndarray:
        """`_arm_parts` of the points ``sel`` (indices into the arrays given to the constructor)."""
        d1, d2 = self.d1[sel], self.d2[sel]
        upper = d1 <= d2
        out = np.where(upper, _UARM_IN[self.side], _LARM_IN[self.side]).astype(np.uint8)
        if self.real_wrist:
            out[~upper & (self.t2[sel] > _HAND_T)] = _HAND[self.side]
        return out
