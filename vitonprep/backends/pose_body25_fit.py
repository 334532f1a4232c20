"""BlazePose -> BODY_25 corrections learned from OpenPose-annotated photos (docs/pose.md, "The mapping").

BlazePose and OpenPose disagree on where some joints are (OpenPose's elbows sit higher on the arm, its ears
further out, its hips follow the waistband), and OpenPose reports a knee at the edge of an upper-body photo where
BlazePose's knee has left the frame. ``bench/pose_fit.py`` measures those differences on photos with official
OpenPose keypoints (``data/pose_fit/sources.csv``) and writes them to ``pose_body25_fit.json`` beside this module;
this module reads that file (JSON only, checked field by field) and applies it.

Each corrected joint J moves by a fixed fraction of a reference vector, in a frame that mirrors with the body
(a left joint's "across" points out to the left, a right joint's out to the right):

* ``frame: torso`` — J += T (along u + across s v): u is the unit torso axis (shoulder midpoint to hip
  midpoint), T its length, v the unit vector across the torso towards the person's left, s = +1 for a left
  joint and -1 for a right one (0 for the midline);
* ``frame: bone`` — J += along (J - P) + across s rot(J - P), P the raw position of the parent joint ``parent``
  and rot a quarter turn towards the outside of the body.

Every correction is computed from the uncorrected positions, so their order does not matter. ``edge_knee``:
when BlazePose's knee lies below the frame (or is not visible) but its hip is visible and at least
``min_thigh`` T of the image lies below the hip, the knee is placed ``depth`` T from the hip along BlazePose's
thigh, if that point is inside the image (OpenPose marks the knee at the hem or the frame edge there; a knee
placed in the torso frame instead, with a sideways offset, agreed less on the fit set: legs 3/8 against 4/8).
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vitonprep.errors import ConfigError

__all__ = ["FIT_FILE", "FORMAT", "JointCorrection", "EdgeKnee", "Body25Fit", "load_fit", "parse_fit",
           "default_fit", "side_signs", "body_frame", "apply_corrections"]

#: The shipped coefficients, written by ``bench/pose_fit.py --write``.
FIT_FILE = Path(__file__).with_name("pose_body25_fit.json")
FORMAT = "vitonprep-body25-fit"
_VERSION = 1
#: A correction larger than this (in units of T or of its bone) is refused as a malformed file.
_MAX_COEF = 1.0

_LEFT = (5, 6, 7, 12, 13, 14, 16, 18, 19, 20, 21)
_RIGHT = (2, 3, 4, 9, 10, 11, 15, 17, 22, 23, 24)


def side_signs() -> np.ndarray:
    """(25,) +1 for the person's left joints, -1 for the right ones, 0 for nose, neck and mid-hip."""
    s = np.zeros(25)
    s[list(_LEFT)] = 1.0
    s[list(_RIGHT)] = -1.0
    return s


_SIDE = side_signs()


@dataclass(frozen=True)
class JointCorrection:
    joint: int
    frame: str  # "torso" | "bone"
    along: float
    across: float
    parent: int = -1  # BODY_25 index, for frame "bone"
    n: int = 0  # fit samples behind the coefficients (provenance)


@dataclass(frozen=True)
class EdgeKnee:
    depth: float  # hip to knee along BlazePose's thigh, in T
    min_thigh: float


@dataclass(frozen=True)
class Body25Fit:
    min_visibility: float
    corrections: tuple[JointCorrection, ...]
    edge_knee: EdgeKnee | None
    provenance: tuple[tuple[str, str], ...] = ()


def _num(v: Any, where: str, lo: float, hi: float) -> float:
    # the range test comes before isfinite: math.isfinite(10 ** 400) raises OverflowError, a huge int is just out
    # of range here
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi or not math.isfinite(v):
        raise ValueError(f"{where} must be a number in [{lo}, {hi}], got {v!r:.80}")
    return float(v)


def _int(v: Any, where: str, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ValueError(f"{where} must be an integer in [{lo}, {hi}], got {v!r}")
    return v


def parse_fit(doc: Any) -> Body25Fit:
    """A :class:`Body25Fit` from the decoded JSON document; ``ValueError`` saying which field is wrong."""
    if not isinstance(doc, dict):
        raise ValueError("the document is not a JSON object")
    if doc.get("format") != FORMAT or doc.get("version") != _VERSION:
        raise ValueError(f"format/version must be {FORMAT!r}/{_VERSION}, got {doc.get('format')!r}/"
                         f"{doc.get('version')!r}")
    unknown = set(doc) - {"format", "version", "provenance", "min_visibility", "corrections", "edge_knee"}
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}")
    min_vis = _num(doc.get("min_visibility"), "min_visibility", 0.0, 1.0)
    items = doc.get("corrections")
    if not isinstance(items, list):
        raise ValueError("corrections must be a list")
    out: list[JointCorrection] = []
    for i, c in enumerate(items):
        where = f"corrections[{i}]"
        if not isinstance(c, dict) or set(c) - {"joint", "frame", "parent", "along", "across", "n"}:
            raise ValueError(f"{where} must be an object with joint, frame, parent, along, across, n")
        joint = _int(c.get("joint"), f"{where}.joint", 0, 24)
        frame = c.get("frame")
        if frame not in ("torso", "bone"):
            raise ValueError(f"{where}.frame must be 'torso' or 'bone', got {frame!r}")
        parent = -1
        if frame == "bone":
            parent = _int(c.get("parent"), f"{where}.parent", 0, 24)
            if parent == joint:
                raise ValueError(f"{where}.parent equals its joint")
        out.append(JointCorrection(joint, frame, _num(c.get("along"), f"{where}.along", -_MAX_COEF, _MAX_COEF),
                                   _num(c.get("across"), f"{where}.across", -_MAX_COEF, _MAX_COEF), parent,
                                   _int(c.get("n", 0), f"{where}.n", 0, 10**9)))
    if len({c.joint for c in out}) != len(out):
        raise ValueError("a joint is corrected twice")
    edge = doc.get("edge_knee")
    knee = None
    if edge is not None:
        if not isinstance(edge, dict) or set(edge) != {"depth", "min_thigh"}:
            raise ValueError("edge_knee must be null or an object with depth and min_thigh")
        knee = EdgeKnee(_num(edge["depth"], "edge_knee.depth", 0.05, 2.0),
                        _num(edge["min_thigh"], "edge_knee.min_thigh", 0.0, 3.0))
    prov = doc.get("provenance", {})
    if not isinstance(prov, dict):
        raise ValueError("provenance must be an object")
    return Body25Fit(min_vis, tuple(out), knee, tuple((str(k), json.dumps(v)) for k, v in sorted(prov.items())))


def load_fit(path: Path) -> Body25Fit:
    """Read and check a coefficients file; ``ConfigError`` naming the file and the reason."""
    try:
        data = Path(path).read_bytes()
        if len(data) > 1_000_000:
            raise ValueError(f"{len(data)} bytes: too large for a coefficients file")
        return parse_fit(json.loads(data.decode("utf-8")))
    except (OSError, UnicodeDecodeError, RecursionError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise ConfigError(f"{path}: not a usable BODY_25 fit file: {exc}") from exc


@functools.lru_cache(maxsize=1)
def default_fit() -> Body25Fit:
    """The shipped coefficients (read once per process)."""
    return load_fit(FIT_FILE)


def body_frame(raw: np.ndarray) -> tuple[np.ndarray, float, np.ndarray, float]:
    """(u, T, v, h) of raw BODY_25 positions (25, 2): unit torso axis, torso length, unit vector towards the
    person's left, and the handedness sign of (u, v) used to turn a bone outwards."""
    sho = (raw[2] + raw[5]) / 2
    hip = (raw[9] + raw[12]) / 2
    axis = hip - sho
    t = float(np.hypot(*axis))
    u = axis / t if t > 1e-6 else np.array([0.0, 1.0])
    left = (raw[5] + raw[12]) / 2 - (raw[2] + raw[9]) / 2
    left = left - np.dot(left, u) * u
    n = float(np.hypot(*left))
    v = left / n if n > 1e-6 else np.array([u[1], -u[0]])
    h = 1.0 if u[0] * v[1] - u[1] * v[0] >= 0 else -1.0
    return u, max(t, 1e-6), v, h


def apply_corrections(raw: np.ndarray, fit: Body25Fit) -> np.ndarray:
    """Corrected (25, 2) positions from raw BODY_25 positions (25, 2) (the edge-knee rule is not applied here)."""
    raw = np.asarray(raw, np.float64)
    u, t, v, h = body_frame(raw)
    out = raw.copy()
    for c in fit.corrections:
        s = _SIDE[c.joint]
        if c.frame == "torso":
            out[c.joint] += t * (c.along * u + c.across * s * v)
        else:
            d = raw[c.joint] - raw[c.parent]
            out[c.joint] += c.along * d + c.across * s * h * np.array([-d[1], d[0]])
    return out
