"""OpenPose-layout keypoints (BODY_25 + 70 face + 2 x 21 hand points) from mediapipe 0.10.21.

The official VITON-HD ``openpose_json`` files come from OpenPose BODY_25 with face and hands (``--face --hand``).
OpenPose is not installable here, so this back-end runs the legacy ``mp.solutions`` models bundled in the
mediapipe 0.10.21 wheel (BlazePose full, FaceMesh with iris refinement, Hands lite or full; nothing is
downloaded; BlazePose ``model_complexity`` 0/2 would try to download and are never used) and maps their outputs
onto the OpenPose layouts. The result approximates OpenPose; it is not OpenPose.

BODY_25 from BlazePose's 33 landmarks (right/left are the person's), before the learned corrections::

    0 Nose <- 0 nose                 15 REye <- 5 right eye        17 REar <- 8 right ear
    1 Neck <- midpoint 11/12         16 LEye <- 2 left eye         18 LEar <- 7 left ear
    2/3/4 RShoulder/RElbow/RWrist <- 12/14/16     5/6/7 LShoulder/LElbow/LWrist <- 11/13/15
    9/10/11 RHip/RKnee/RAnkle <- 24/26/28         12/13/14 LHip/LKnee/LAnkle <- 23/25/27
    8 MidHip <- midpoint of the corrected hips
    22 RBigToe <- 32 right foot index   24 RHeel <- 30   19 LBigToe <- 31 left foot index   21 LHeel <- 29
    23 RSmallToe / 20 LSmallToe: synthesised (BlazePose has no little toe), see below.

* Learned corrections (``pose_body25_fit.py``, coefficients in ``pose_body25_fit.json``, fitted by
  ``bench/pose_fit.py`` on photos with official OpenPose keypoints, docs/pose.md): each joint moves by a fixed
  fraction of its torso or bone vector (OpenPose's elbows and wrists sit higher on the arm, its ears further
  out, its hips higher), and a knee OpenPose would report at the hem or the frame edge of an upper-body photo is
  placed where BlazePose's knee has left the frame.
* Confidence = BlazePose visibility. As in OpenPose's JSON, a joint is written as (0, 0, 0) when it is not
  found: visibility below the fitted ``min_visibility`` or a position outside the image (BlazePose
  extrapolates out-of-frame joints, OpenPose cannot see them). The frame is the photo's `PhotoRect` (``fit:
  pad`` bands are out of frame; the person mask is zero there). Neck / MidHip need both of their source joints.
* Left/right: BlazePose's body is checked against FaceMesh's face (``pose_orientation.py``): swapped when the
  evidence is clear, a warning otherwise.
* Small toes (OpenPose's sits about one foot width lateral to the big toe): big toe + 0.2 (heel - big toe) +
  0.15 x shin length outwards, confidence = min(foot index, heel) visibility. Not measured (no full-body truth).

Face: 68 iBUG-style points + 2 pupils from FaceMesh (468 landmarks + 10 iris landmarks with
``refine_landmarks=True``, whose model is inside the wheel) through the fixed table ``FACE70_FROM_FACEMESH``.
The table was built by picking, for each OpenPose face point, the FaceMesh landmark nearest to it on the 3
official faces (normalised by face size), under the constraint that left/right mirror pairs of OpenPose
points map to mirror pairs of FaceMesh landmarks (midline points to midline landmarks); pupils are the iris
centres 468 / 473. It is an approximation of OpenPose's face model layout (e.g. jaw points sit on FaceMesh's
cheek contour, not on the occluding jaw line of a turned face). FaceMesh runs on a square crop around the
BlazePose head landmarks (FaceMesh's own face detector is short-range: on the whole 768x1024 image it found
no face even for the official persons shrunk to 60 %, the crop finds all 70 points down to 35 %).
FaceMesh has no per-point score: every point gets the mean visibility of BlazePose's face landmarks.
Face and hand points are kept even when they fall a little outside the image, as OpenPose does (its face
and hand models regress points inside a crop that may cross the border: the official 03615_00 left hand
reaches y = 1070 in a 1024-high image); a face is only looked for when the nose is inside the image.

Hands: mediapipe Hands (static, up to 2 hands) already uses OpenPose's 21-point order (wrist, thumb 1-4,
index, middle, ring, pinky). Its handedness label assumes a mirrored selfie image, so on an ordinary photo
"Left" is the person's right hand. Hands are assigned to the body wrists by distance (BlazePose wrists),
with the flipped label as a tie-breaker; a hand farther than ``HAND_MAX_DIST`` shoulder widths from the wrist
it is assigned to is dropped (someone else's hand). Per-point confidence = the handedness score.

Hand model: ``hands_model="lite"`` (the default) runs mediapipe's lite palm detector and hand landmark model
(``model_complexity=0``, both inside the wheel), ``"full"`` the full ones. Measured on the 5 official hands
(3 persons, a smoke signal): the same PCK for both (90/105 at 0.1 x hand box, 102/105 at 0.2). On the 12
bundled persons the lite points lie 3 px (median over hands; at most 8 px) from the full model's on average
per hand, single fingertips up to ~30 px; the lite detector found one hand the full one missed. The lite Hands
call takes ~0.6x the CPU time of the full one (``bench/bench_backends_mediapipe.py``); parse mIoU on the
official persons 0.8023 (lite) vs 0.8026 (full). mediapipe's Holistic graph (hands and face cropped from the
BlazePose landmarks, ~0.85x the CPU of BlazePose + FaceMesh + Hands full) was measured too and rejected: its
hand landmarks depend on the previously processed image even with ``static_image_mode=True`` (not
reproducible, so a resumed build would differ from an uninterrupted one; a ``reset()`` per image costs more
than it saves).

Not thread-safe: one instance per thread/process. The instance is picklable (mediapipe objects are created
lazily by :meth:`MediapipePose.setup` and are not pickled), so it can be handed to worker processes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from vitonprep.backends._mediapipe import MediapipeGraphs, import_mediapipe
from vitonprep.backends.pose_body25_fit import Body25Fit, apply_corrections, body_frame, default_fit
from vitonprep.backends.pose_hands import assign_hands, fill_hand
from vitonprep.backends.pose_orientation import check_orientation
from vitonprep.backends.protocols import Backend, PhotoRect
from vitonprep.backends.results import NoPersonError, PoseResult
from vitonprep.derive.body25 import OpenPoseKeypoints

logger = logging.getLogger(__name__)

NAME = "pose-mediapipe-blazepose"
APPROXIMATE = True

__all__ = ["NAME", "APPROXIMATE", "MediapipePoseConfig", "MediapipePose", "NoPersonError", "BODY25_FROM_BLAZEPOSE",
           "FACE70_FROM_FACEMESH", "MIN_VISIBILITY", "raw_body25", "blazepose_to_body25"]

#: BODY_25 index -> BlazePose landmark index for the joints copied directly (then corrected, pose_body25_fit).
BODY25_FROM_BLAZEPOSE: dict[int, int] = {
    0: 0, 2: 12, 3: 14, 4: 16, 5: 11, 6: 13, 7: 15,
    9: 24, 10: 26, 11: 28, 12: 23, 13: 25, 14: 27,
    15: 5, 16: 2, 17: 8, 18: 7,
    19: 31, 21: 29, 22: 32, 24: 30,
}

#: A face is looked for, and a missed hand looked for again, only when the nose / wrist is this visible (body
#: joints use the fitted ``min_visibility`` of pose_body25_fit.json).
MIN_VISIBILITY = 0.2
#: Small toe offsets (fractions of heel - big toe, and of the shin length, laterally).
_SMALL_TOE_BACK = 0.2
_SMALL_TOE_SIDE = 0.15
#: A detected hand must lie within this many shoulder widths of a body wrist.
HAND_MAX_DIST = 1.5
#: Side of the square crop around a visible wrist searched again for a missed hand, in shoulder widths.
HAND_CROP = 1.2
#: ``hands_model`` -> mediapipe Hands ``model_complexity`` (both models ship in the 0.10.21 wheel)
_HAND_COMPLEXITY = {"lite": 0, "full": 1}

#: OpenPose face point (0..69) -> FaceMesh landmark (0..477, iris centres 468 / 473).
FACE70_FROM_FACEMESH: tuple[int, ...] = (
    # 0-16 jaw (image left to right for a frontal face), 8 = chin
    34, 227, 93, 215, 138, 136, 149, 176, 152, 400, 378, 365, 367, 435, 323, 447, 264,
    # 17-21 right brow, 22-26 left brow
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
    # 27-30 nose bridge, 31-35 nostrils / base
    168, 197, 195, 4, 75, 20, 2, 250, 305,
    # 36-41 right eye, 42-47 left eye
    246, 160, 158, 155, 153, 144, 382, 385, 387, 466, 373, 380,
    # 48-59 outer lips, 60-67 inner lips
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181,
    183, 82, 13, 312, 415, 317, 14, 87,
    # 68 right pupil, 69 left pupil
    468, 473,
)

# BlazePose landmark ids used below.
_L_SHO, _R_SHO, _L_WRI, _R_WRI, _L_HIP, _R_HIP = 11, 12, 15, 16, 23, 24
_L_KNEE, _R_KNEE, _L_ANK, _R_ANK, _L_HEEL, _R_HEEL, _L_TOE, _R_TOE = 25, 26, 27, 28, 29, 30, 31, 32
_HEAD = tuple(range(11))


@dataclass(frozen=True)
class MediapipePoseConfig:
    """``min_detection_confidence`` applies to the BlazePose, FaceMesh and Hands detectors."""

    min_detection_confidence: float = 0.5
    face: bool = True
    hands: bool = True
    segmentation: bool = True
    hands_model: str = "lite"  # lite | full: mediapipe Hands model_complexity 0 | 1 (see the module docstring)


def _inside(xy: np.ndarray, w: int, h: int) -> np.ndarray:
    return (xy[..., 0] >= 0) & (xy[..., 0] < w) & (xy[..., 1] >= 0) & (xy[..., 1] < h)


def raw_body25(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Uncorrected BODY_25 positions (25, 2) and source visibilities (25,) from BlazePose landmarks (33, >=4).

    Neck and MidHip are midpoints (their visibility the lower of the two); small toes are synthesised (module
    docstring).
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.ndim != 2 or lm.shape[0] != 33 or lm.shape[1] < 4:
        raise ValueError(f"expected (33, 4) BlazePose landmarks, got {lm.shape}")
    xy, vis = lm[:, :2], lm[:, 3]
    pos = np.zeros((25, 2))
    v = np.zeros(25)
    for b25, bp in BODY25_FROM_BLAZEPOSE.items():
        pos[b25], v[b25] = xy[bp], vis[bp]
    for b25, (a, b) in ((1, (_L_SHO, _R_SHO)), (8, (_L_HIP, _R_HIP))):
        pos[b25], v[b25] = (xy[a] + xy[b]) / 2, min(vis[a], vis[b])
    hip_mid = pos[8]
    for b25, toe, heel, knee, ank in ((23, _R_TOE, _R_HEEL, _R_KNEE, _R_ANK),
                                      (20, _L_TOE, _L_HEEL, _L_KNEE, _L_ANK)):
        side = np.sign(xy[ank, 0] - hip_mid[0])
        if side == 0:
            side = 1.0 if toe == _L_TOE else -1.0
        shin = float(np.linalg.norm(xy[knee] - xy[ank]))
        pos[b25] = xy[toe] + _SMALL_TOE_BACK * (xy[heel] - xy[toe]) + np.array([side * _SMALL_TOE_SIDE * shin, 0.0])
        v[b25] = min(vis[toe], vis[heel])
    return pos, v


def blazepose_to_body25(landmarks: np.ndarray, width: int, height: int, fit: Body25Fit | None = None,
                        rect: PhotoRect | None = None) -> np.ndarray:
    """BODY_25 (25, 3) float32 from BlazePose landmarks (33, >=4: x px, y px, z, visibility).

    The raw mapping of the module docstring, then the learned corrections and visibility rules of ``fit``
    (default: the shipped ``pose_body25_fit.json``; docs/pose.md). ``rect``: the photo on the canvas (default the
    whole canvas); a joint outside it is out of frame.
    """
    fit = fit if fit is not None else default_fit()
    rect = rect if rect is not None else PhotoRect.whole(width, height)
    raw, vis = raw_body25(landmarks)
    pos = apply_corrections(raw, fit)
    pos[8] = (pos[9] + pos[12]) / 2  # OpenPose's MidHip lies between its hips
    seen = vis >= fit.min_visibility
    ok = seen & rect.contains(pos) & np.isfinite(pos).all(1)
    for small, big, heel in ((20, 19, 21), (23, 22, 24)):
        ok[small] &= bool(rect.contains(raw[big]) and rect.contains(raw[heel]))
    if fit.edge_knee is not None:
        u, t, _, _ = body_frame(raw)
        for hip, knee in ((9, 10), (12, 13)):
            if ok[knee] or not ok[hip] or (rect.y1 - pos[hip, 1]) < fit.edge_knee.min_thigh * t:
                continue
            d = raw[knee] - raw[hip]
            n = float(np.hypot(*d))
            cand = pos[hip] + fit.edge_knee.depth * t * (d / n if n > 1e-6 else u)
            if rect.contains(cand):
                pos[knee], vis[knee], ok[knee] = cand, min(vis[hip], 0.3), True
    out = np.zeros((25, 3), np.float64)
    out[ok, :2] = pos[ok]
    out[ok, 2] = np.clip(vis[ok], 1e-3, 1.0)
    return out.astype(np.float32)


def _check_rgb(rgb: Any) -> np.ndarray:
    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 RGB image, got shape {a.shape}")
    if a.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {a.dtype}")
    return np.ascontiguousarray(a)


class MediapipePose(MediapipeGraphs, Backend):
    """Callable back-end: ``MediapipePose(config)(rgb) -> PoseResult``; raises :class:`NoPersonError`.

    BlazePose's 33 landmarks mapped onto BODY_25 are an approximation of OpenPose (``APPROXIMATE``), and so is
    every map derived from them.
    """

    NAME = NAME
    KIND = "pose"
    APPROXIMATE = APPROXIMATE
    LICENCE = "mediapipe models (Apache-2.0)"
    Config = MediapipePoseConfig
    PHOTO_RECT = True
    name = NAME

    _GRAPHS = ("_pose", "_face", "_hands")

    def __init__(self, config: MediapipePoseConfig | None = None, weights_dir: object = None):
        self.config = config if config is not None else MediapipePoseConfig()
        if self.config.hands_model not in _HAND_COMPLEXITY:
            raise ValueError(f"hands_model must be one of {sorted(_HAND_COMPLEXITY)}, got {self.config.hands_model!r}")
        self._pose = self._face = self._hands = None

    # ------------------------------------------------------------------ lifecycle
    def setup(self) -> "MediapipePose":
        """Build the mediapipe solutions once (idempotent)."""
        if self._pose is not None:
            return self
        mp = import_mediapipe()  # imported lazily: heavy, and keeps the instance picklable

        c = self.config
        with self._graphs_built():
            self._pose = mp.solutions.pose.Pose(
                static_image_mode=True, model_complexity=1, smooth_landmarks=False,
                enable_segmentation=c.segmentation, min_detection_confidence=c.min_detection_confidence)
            if c.face:
                self._face = mp.solutions.face_mesh.FaceMesh(
                    static_image_mode=True, max_num_faces=1, refine_landmarks=True,
                    min_detection_confidence=c.min_detection_confidence)
            if c.hands:
                self._hands = mp.solutions.hands.Hands(
                    static_image_mode=True, max_num_hands=2, model_complexity=_HAND_COMPLEXITY[c.hands_model],
                    min_detection_confidence=c.min_detection_confidence)
        logger.debug("mediapipe pose back-end ready (face=%s hands=%s segmentation=%s)",
                     c.face, c.hands, c.segmentation)
        return self

    # ------------------------------------------------------------------ stages
    def landmarks(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """BlazePose stage: ((33, 4) landmarks in pixels, person mask or None). Raises NoPersonError."""
        rgb = _check_rgb(rgb)
        self.setup()
        h, w = rgb.shape[:2]
        res = self._process("_pose", rgb)
        if res.pose_landmarks is None:
            raise NoPersonError("no person found by BlazePose")
        lm = np.array([[p.x * w, p.y * h, p.z * w, p.visibility] for p in res.pose_landmarks.landmark],
                      dtype=np.float32)
        mask = None
        if self.config.segmentation and res.segmentation_mask is not None:
            mask = np.clip(np.asarray(res.segmentation_mask, dtype=np.float32), 0.0, 1.0)
        return lm, mask

    def face_keypoints(self, rgb: np.ndarray, landmarks: np.ndarray, rect: PhotoRect | None = None) -> np.ndarray:
        """FaceMesh stage: (70, 3) OpenPose face points (zeros when no face is found or the nose is off ``rect``)."""
        out = np.zeros((70, 3), np.float32)
        if not self.config.face:
            return out
        rgb = _check_rgb(rgb)
        self.setup()
        h, w = rgb.shape[:2]
        lm = np.asarray(landmarks, dtype=np.float64)
        head = lm[list(_HEAD)]
        nose = head[0, :2]
        if head[0, 3] < MIN_VISIBILITY or not (rect or PhotoRect.whole(w, h)).contains(nose):
            return out
        ears = np.linalg.norm(lm[7, :2] - lm[8, :2])
        eye_mouth = np.linalg.norm((lm[2, :2] + lm[5, :2]) / 2 - (lm[9, :2] + lm[10, :2]) / 2)
        size = max(ears, 3.0 * eye_mouth, 8.0)
        centre = head[:, :2].mean(0)
        half = 1.1 * size
        x0, y0 = int(max(0, np.floor(centre[0] - half))), int(max(0, np.floor(centre[1] - half)))
        x1, y1 = int(min(w, np.ceil(centre[0] + half))), int(min(h, np.ceil(centre[1] + half)))
        if x1 - x0 < 16 or y1 - y0 < 16:
            return out
        crop = np.ascontiguousarray(rgb[y0:y1, x0:x1])
        res = self._process("_face", crop)
        if not res.multi_face_landmarks:
            return out
        cw, ch = x1 - x0, y1 - y0
        fm = np.array([[p.x * cw + x0, p.y * ch + y0] for p in res.multi_face_landmarks[0].landmark])
        if fm.shape[0] < 478:  # no iris landmarks: fall back to eye centres
            fm = np.concatenate([fm, np.zeros((478 - fm.shape[0], 2))])
            fm[468] = fm[[33, 133]].mean(0)
            fm[473] = fm[[263, 362]].mean(0)
        if np.linalg.norm(fm[4] - nose) > 0.5 * size:
            logger.debug("FaceMesh face does not belong to the BlazePose head; face left empty")
            return out
        pts = fm[list(FACE70_FROM_FACEMESH)]
        ok = np.isfinite(pts).all(1)
        out[ok, :2] = pts[ok]
        out[ok, 2] = float(np.clip(head[:, 3].mean(), 1e-3, 1.0))
        return out

    def hand_keypoints(self, rgb: np.ndarray, landmarks: np.ndarray, rect: PhotoRect | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
        """Hands stage: ((21, 3) person's left hand, (21, 3) person's right hand), zeros when not found."""
        left = np.zeros((21, 3), np.float32)
        right = np.zeros((21, 3), np.float32)
        if not self.config.hands:
            return left, right
        rgb = _check_rgb(rgb)
        self.setup()
        h, w = rgb.shape[:2]
        rect = rect or PhotoRect.whole(w, h)
        lm = np.asarray(landmarks, dtype=np.float64)
        wrists = {"L": lm[_L_WRI, :2], "R": lm[_R_WRI, :2]}
        scale = max(float(np.linalg.norm(lm[_L_SHO, :2] - lm[_R_SHO, :2])), 1.0)
        outs = {"L": left, "R": right}
        hands = self._hands_in(rgb, 0, 0)
        for side, k in assign_hands(hands, wrists, scale).items():
            pts, _, score = hands[k]
            if np.linalg.norm(pts[0] - wrists[side]) / scale > HAND_MAX_DIST:
                logger.debug("hand far from the %s wrist dropped", side)
                continue
            fill_hand(outs[side], pts, score)
        # A visible wrist without a hand: look again in a crop around it. The palm detector sees the whole photo
        # at 192 px (lite) and misses small or low-contrast hands that it finds in the crop (official 08909_00).
        for side, wi in (("L", _L_WRI), ("R", _R_WRI)):
            if outs[side][0, 2] > 0 or lm[wi, 3] < MIN_VISIBILITY or not rect.contains(lm[wi, :2]):
                continue
            half = HAND_CROP * scale / 2
            x0, y0 = int(max(0, np.floor(wrists[side][0] - half))), int(max(0, np.floor(wrists[side][1] - half)))
            x1, y1 = int(min(w, np.ceil(wrists[side][0] + half))), int(min(h, np.ceil(wrists[side][1] + half)))
            if x1 - x0 < 16 or y1 - y0 < 16:
                continue
            found = self._hands_in(np.ascontiguousarray(rgb[y0:y1, x0:x1]), x0, y0)
            other = outs["R" if side == "L" else "L"]
            found = [c for c in found if other[0, 2] <= 0 or np.linalg.norm(c[0][0] - other[0, :2]) > 0.2 * scale]
            if not found:
                continue
            pts, _, score = min(found, key=lambda c: float(np.linalg.norm(c[0][0] - wrists[side])))
            if np.linalg.norm(pts[0] - wrists[side]) / scale <= HAND_MAX_DIST:
                fill_hand(outs[side], pts, score)
        return left, right

    def _hands_in(self, rgb: np.ndarray, x0: int, y0: int) -> list[tuple[np.ndarray, str, float]]:
        """mediapipe Hands on ``rgb`` (a crop at x0, y0 of the photo): [(21 x 2 points in photo pixels, the
        person's side "L"/"R" from the label, score)]."""
        h, w = rgb.shape[:2]
        res = self._process("_hands", rgb)
        if not res.multi_hand_landmarks:
            return []
        hands = []
        for hl, hd in zip(res.multi_hand_landmarks, res.multi_handedness, strict=True):
            cls = hd.classification[0]
            pts = np.array([[p.x * w + x0, p.y * h + y0] for p in hl.landmark])
            # mediapipe's label assumes a mirrored (selfie) image: flip it for a normal photo
            hands.append((pts, "R" if cls.label == "Left" else "L", float(cls.score)))
        return hands

    # ------------------------------------------------------------------ main entry
    def __call__(self, rgb: np.ndarray, rect: PhotoRect | None = None) -> PoseResult:
        rgb = _check_rgb(rgb)
        h, w = rgb.shape[:2]
        rect = rect or PhotoRect.whole(w, h)
        lm, mask = self.landmarks(rgb)
        if mask is not None and not rect.is_whole(w, h):
            rect.outside(mask)  # the segmentation bleeds into a flat pad band next to the person
        face = self.face_keypoints(rgb, lm, rect)
        lm, orientation = check_orientation(lm, face)
        # the pose stage logs a corrected or unclear orientation as a warning with the file's name
        notes = ((f"left/right of the skeleton {orientation.status}: {orientation.reason}",)
                 if orientation.status in ("corrected", "unclear") else ())
        pose = blazepose_to_body25(lm, w, h, rect=rect)
        hand_left, hand_right = self.hand_keypoints(rgb, lm, rect)
        kp = OpenPoseKeypoints(pose=pose, face=face, hand_left=hand_left, hand_right=hand_right)
        return PoseResult(keypoints=kp, landmarks=lm, person_mask=mask, notes=notes)
