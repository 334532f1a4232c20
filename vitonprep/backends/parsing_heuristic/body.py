"""Body geometry of the heuristic parser: keypoints at work resolution and distances to limb segments."""

from __future__ import annotations

import logging

import cv2
import numpy as np

from vitonprep.backends.pose_mediapipe import BODY25_FROM_BLAZEPOSE
from vitonprep.backends.protocols import PhotoRect
from vitonprep.backends.results import PoseResult
from vitonprep.derive.body25 import HAND_PAIRS

logger = logging.getLogger(__name__)

THIGH = 0.8  # synthetic hip-knee / knee-ankle length, fraction of the neck-midhip length
MIN_FACE_POINTS = 60  # of 70: fewer found face points means FaceMesh failed; the face is synthesised instead
MIN_HAND_POINTS = 15  # of 21: a hand with fewer points is too partial to outline
HAND_TIP_VISIBILITY = 0.3  # BlazePose visibility above which its pinky / index / thumb landmarks are used
# chin above the neck joint, in shoulder widths: median of 25 persons with face keypoints (graded set, part
# tuned; range 0.28-0.46), used when the head is cut by the frame and the face model found nothing
CHIN_ABOVE_NECK = 0.37
CHIN_SEARCH = (0.2, 0.55)  # the jaw line is looked for this many sw above the neck ...
CHIN_EDGE, CHIN_MIN_EDGE = 0.3, 0.15  # ... as the lowest row with this share of the strongest edge (if any)
IOD_PER_SW = 0.21  # inter-ocular distance per shoulder width: median of the same 25 persons (0.17-0.27)
# extrapolated eyes farther apart than this many shoulder widths are brought back to it (above the measured
# 0.27 with room to spare; eyes 2 sw apart parsed the whole torso as face)
IOD_MAX_PER_SW = 0.4
FAR = 1e6  # distance (px) reported when there is no segment to measure to


def _pt(kp: np.ndarray, i: int) -> np.ndarray | None:
    return kp[i, :2].astype(np.float64) if kp[i, 2] > 0 else None


class Body:
    """Keypoints at work resolution plus derived lengths; missing joints are None.

    ``sw`` (shoulder width) falls back on 1.6 hip widths, 2.5 jaw widths or 0.3 image widths (average adult
    proportions); the neck on half a shoulder width below the chin, the mid-hip on 1.5 shoulder widths below
    the neck. ``rect``: the photo at work resolution (default the whole map): the frame whose edges cut limbs and
    heads.
    """

    def __init__(self, pose: PoseResult, scale: float, shape: tuple[int, int], rect: PhotoRect | None = None):
        kp = pose.keypoints
        h, w = shape
        rect = rect or PhotoRect.whole(w, h)
        body = kp.pose.copy()
        body[:, :2] *= scale
        lm = None if pose.landmarks is None else np.asarray(pose.landmarks, np.float64)
        self.j: dict[int, np.ndarray | None] = {}
        for i in range(25):
            p = _pt(body, i)
            if p is None and lm is not None and i in BODY25_FROM_BLAZEPOSE and i not in (9, 12):
                # an out-of-frame joint (cut by the image border) still gives a limb direction
                q = lm[BODY25_FROM_BLAZEPOSE[i], :2] * scale
                if np.isfinite(q).all() and not rect.contains(q):  # a NaN end point cannot be drawn
                    p = q
            self.j[i] = p
        face = kp.face.copy()
        face[:, :2] *= scale
        self.face = face[:, :2].astype(np.float64) if (face[:, 2] > 0).sum() >= MIN_FACE_POINTS else None
        self.cut_eyes: tuple[np.ndarray, np.ndarray] | None = None  # set when the face hangs on the neck
        if self.face is None:
            self.face = self._face_from_eyes(body, lm, scale, rect)
        self.hands = {}
        for side, hand in (("L", kp.hand_left), ("R", kp.hand_right)):
            if (hand[:, 2] > 0).sum() >= MIN_HAND_POINTS:
                self.hands[side] = hand[:, :2].astype(np.float64) * scale
        # BlazePose's own hand landmarks (pinky, index, thumb) when the hand model found no hand
        self.hand_tips: dict[str, np.ndarray] = {}
        if lm is not None:
            for side, ids in (("L", (17, 19, 21)), ("R", (18, 20, 22))):
                if side not in self.hands and lm[ids[0], 3] > HAND_TIP_VISIBILITY:
                    self.hand_tips[side] = lm[list(ids), :2] * scale
        j = self.j
        if j[2] is not None and j[5] is not None:
            self.sw = float(np.linalg.norm(j[2] - j[5]))
        elif j[9] is not None and j[12] is not None:
            self.sw = 1.6 * float(np.linalg.norm(j[9] - j[12]))
        elif self.face is not None:
            self.sw = 2.5 * float(np.linalg.norm(self.face[0] - self.face[16]))
        else:
            self.sw = 0.3 * w
        self.sw = max(self.sw, 4.0)
        neck = j[1] if j[1] is not None else (None if j[2] is None or j[5] is None else (j[2] + j[5]) / 2)
        mid = j[8]
        if mid is None and lm is not None:
            mid = (lm[23, :2] + lm[24, :2]) / 2 * scale
        if neck is None and self.face is not None:
            neck = self.face[8] + np.array([0.0, 0.5 * self.sw])
        if neck is None:
            neck = np.array([w / 2, 0.15 * h])
        if mid is None:
            mid = neck + np.array([0.0, 1.5 * self.sw])
        self.neck, self.mid = neck, mid
        self.torso_len = max(float(np.linalg.norm(mid - neck)), 4.0)
        # legs cut by the frame without a landmark to follow: continue them straight down the torso axis
        down = (mid - neck) / self.torso_len
        for hip, knee, ankle in ((9, 10, 11), (12, 13, 14)):
            if j[hip] is not None and j[knee] is None:
                j[knee] = j[hip] + THIGH * self.torso_len * down
                if j[ankle] is None:
                    j[ankle] = j[knee] + THIGH * self.torso_len * down

    def _face_from_eyes(self, body: np.ndarray, lm: np.ndarray | None, scale: float, rect: PhotoRect
                        ) -> np.ndarray | None:
        """Face polygon from the eyes when the face model found none: the BODY_25 eyes when inside the frame;
        for a head cut by the frame's top (eyes above it, so no face keypoints), BlazePose's extrapolated eyes
        give the face's width and direction and the neck gives its chin: the chin sits ``CHIN_ABOVE_NECK``
        shoulder widths above the neck joint. Without this the visible lips and chin are parsed as neck."""
        eye_r, eye_l = _pt(body, 15), _pt(body, 16)
        if eye_r is not None and eye_l is not None and rect.y0 <= (eye_r[1] + eye_l[1]) / 2 < rect.y1:
            logger.debug("no face keypoints: face polygon synthesised from the eyes")
            return synth_face(eye_r, eye_l)
        sho_r, sho_l = _pt(body, 2), _pt(body, 5)
        if lm is None or sho_r is None or sho_l is None:
            return None
        eye_l, eye_r = lm[2, :2] * scale, lm[5, :2] * scale
        if not (np.isfinite(eye_l).all() and np.isfinite(eye_r).all()):
            return None  # no usable eyes (a landmark model may answer NaN): no face to build
        if (eye_l[1] + eye_r[1]) / 2 >= rect.y0:
            return None  # eyes inside the frame but not found: no evidence of a face
        sw = float(np.linalg.norm(sho_r - sho_l))
        chin = (sho_r + sho_l) / 2 - np.array([0.0, CHIN_ABOVE_NECK * sw])
        if chin[1] < rect.y0:
            return None  # the chin itself is out of frame: no face to keep
        iod = float(np.linalg.norm(eye_l - eye_r))
        # a turned or extrapolated head's eyes come too close (or, guessed far out, too far): bring them to the
        # typical width, or back to the widest a real face shows
        want = IOD_PER_SW * sw if iod < IOD_PER_SW * sw else min(iod, IOD_MAX_PER_SW * sw)
        if 0 < iod != want:
            m = (eye_l + eye_r) / 2
            eye_l, eye_r = m + (eye_l - m) * (want / iod), m + (eye_r - m) * (want / iod)
        logger.debug("head cut by the frame: face polygon synthesised from the landmark eyes and the neck")
        self.cut_eyes = (eye_r, eye_l)
        return synth_face(eye_r, eye_l, chin)

    def refine_cut_chin(self, edges: np.ndarray) -> None:
        """For a face hung on the neck (`_face_from_eyes`), move its chin to the jaw line: the lowest row, in
        ``CHIN_SEARCH`` shoulder widths above the neck and within a fifth of a shoulder width of the chin's
        column, whose horizontal edge strength (``edges``, 0..1) reaches ``CHIN_EDGE`` of the strongest there
        (lips and nostrils are edges too, higher up). The neck-to-chin length varies by +-0.1 sw between persons."""
        if self.cut_eyes is None or self.face is None:
            return
        h, w = edges.shape
        sho_r, sho_l = self.j[2], self.j[5]
        neck_y = (sho_r[1] + sho_l[1]) / 2
        cx = self.face[8][0]
        xa, xb = max(0, int(cx - 0.2 * self.sw)), min(w, int(cx + 0.2 * self.sw) + 1)
        ya, yb = max(0, int(neck_y - CHIN_SEARCH[1] * self.sw)), min(h, int(neck_y - CHIN_SEARCH[0] * self.sw))
        if xb - xa < 3 or yb - ya < 3:
            return
        profile = edges[ya:yb, xa:xb].mean(1)
        if profile.max() < CHIN_MIN_EDGE:
            return
        y = ya + int(np.nonzero(profile >= CHIN_EDGE * profile.max())[0][-1])
        face = synth_face(*self.cut_eyes, np.array([cx, float(y)]))
        if face is not None:
            self.face = face

    def shift(self, dx: float, dy: float) -> None:
        """Move every point by (dx, dy) (to the coordinates of a crop)."""
        d = np.array([dx, dy], np.float64)
        for i, p in self.j.items():
            if p is not None:
                self.j[i] = p + d
        if self.face is not None:
            self.face = self.face + d
        if self.cut_eyes is not None:
            self.cut_eyes = (self.cut_eyes[0] + d, self.cut_eyes[1] + d)
        self.hands = {k: v + d for k, v in self.hands.items()}
        self.hand_tips = {k: v + d for k, v in self.hand_tips.items()}
        self.neck, self.mid = self.neck + d, self.mid + d


def synth_face(eye_r: np.ndarray, eye_l: np.ndarray, chin: np.ndarray | None = None) -> np.ndarray | None:
    """70 OpenPose-layout face points from the two eyes alone (used when the face model found no face).

    Average frontal proportions in inter-ocular distances (IOD): cheek contour = lower half of an ellipse
    through the eye line, 1.0 IOD wide each side and 1.55 IOD deep (chin); brows 0.35 IOD above the eyes;
    nostrils 0.65 and mouth 1.05 IOD below them. With ``chin``, the face's axis and depth run from the
    chin to the eyes' midpoint (eyes extrapolated above the frame are unreliable in depth and tilt).
    """
    iod = float(np.linalg.norm(eye_l - eye_r))
    if iod < 2.0:
        return None
    e = (eye_l - eye_r) / iod
    up = np.array([e[1], -e[0]])
    m = (eye_l + eye_r) / 2
    if chin is not None:
        depth = float(np.dot(m - chin, up))
        if depth > 0.5 * iod:  # a chin below the eyes: the face's axis runs from it to the eyes' midpoint
            up = (m - chin) / (1.55 * iod)
            e = np.array([-up[1], up[0]]) / float(np.linalg.norm(up))
    out = np.zeros((70, 2))
    th = np.linspace(0, np.pi, 17)
    out[0:17] = m - np.outer(np.cos(th), e) * iod - np.outer(np.sin(th), up) * 1.55 * iod
    bx = np.concatenate([np.linspace(-0.9, -0.2, 5), np.linspace(0.2, 0.9, 5)])
    out[17:27] = m + 0.35 * iod * up + np.outer(bx, e) * iod
    out[27:31] = m - np.outer(np.linspace(0, 0.55, 4), up) * iod
    out[31:36] = m - 0.65 * iod * up + np.outer(np.linspace(-0.2, 0.2, 5), e) * iod
    ring = np.linspace(0, 2 * np.pi, 6, endpoint=False)
    for c, sl in ((eye_r, slice(36, 42)), (eye_l, slice(42, 48))):
        out[sl] = c - np.outer(np.cos(ring), e) * 0.2 * iod + np.outer(np.sin(ring), up) * 0.08 * iod
    mouth = m - 1.05 * iod * up
    ring = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    out[48:60] = mouth - np.outer(np.cos(ring), e) * 0.4 * iod + np.outer(np.sin(ring), up) * 0.15 * iod
    ring = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    out[60:68] = mouth - np.outer(np.cos(ring), e) * 0.3 * iod + np.outer(np.sin(ring), up) * 0.05 * iod
    out[68], out[69] = eye_r, eye_l
    return out


Segments = list[tuple[np.ndarray, np.ndarray]]


def chain_map(shape: tuple[int, int], lines: Segments, thick: int = 1) -> np.ndarray:
    """Distance (px) of every pixel to a set of segments (``FAR`` when there is none)."""
    h, w = shape
    if not lines:
        return np.full(shape, FAR, np.float32)
    canvas = np.full(shape, 255, np.uint8)
    off = 4 * max(h, w)
    ends = np.clip(np.array(lines, np.float64).reshape(-1, 4), -off, off)
    if np.isnan(ends).any():
        raise ValueError("cannot draw a limb segment with a NaN end point")
    # np.rint rounds half to even like round(): the same integer end points
    for xa, ya, xb, yb in np.rint(ends).astype(np.int64).tolist():
        cv2.line(canvas, (xa, ya), (xb, yb), 0, thick)
    if canvas.min() == 255:
        return np.full(shape, FAR, np.float32)
    return cv2.distanceTransform(canvas, cv2.DIST_L2, 3)


def limb_lines(body: Body, ids: tuple[int, ...]) -> Segments:
    """Segments along the joints ``ids`` up to the first missing one (a lone joint gives a point)."""
    pts = [body.j[i] for i in ids]
    out = []
    prev = None
    for p in pts:
        if p is None:
            break
        if prev is not None:
            out.append((prev, p))
        prev = p
    if len(out) == 0 and prev is not None:
        out.append((prev, prev))
    return out


def hand_segments(body: Body, side: str, wrist: int) -> Segments:
    """Hand skeleton segments: hand keypoints, else wrist -> BlazePose hand landmarks."""
    if side in body.hands:
        hand = body.hands[side]
        return [(hand[a], hand[b]) for a, b in HAND_PAIRS]
    if side in body.hand_tips and body.j[wrist] is not None:
        return [(body.j[wrist], p) for p in body.hand_tips[side]]
    return []
