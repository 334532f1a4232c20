"""The parse's garment regions judged against the person photo itself: where the parse ends the top garment and
starts the trousers or skirt, the photo must show a hem (``hem_edge``); the garment region must not be the
wearer's bare skin, whose colour the face shows (``skin_in_garment``)."""

from __future__ import annotations

import cv2
import numpy as np

from vitonprep.quality.config import QualityConfig
from vitonprep.quality.geometry import Body
from vitonprep.quality.photo_checks import GARMENT_LABELS
from vitonprep.quality.report import Outcome

__all__ = ["hem_edge", "skin_in_garment"]

#: CIHP upper clothes, dress, coat (the garment above a hem) and pants, skirt (the garment below it)
_TOP_LUT, _BOTTOM_LUT = np.zeros(256, bool), np.zeros(256, bool)
_TOP_LUT[[5, 6, 7]], _BOTTOM_LUT[[9, 12]] = True, True
#: judged at half size: a hem is a line across the body, hundreds of pixels long; 2 px cells do not move it
_HEM_SCALE = 2
#: an edge counts within this many half-size pixels (about 5 px of the full size) of the parse's boundary: the
#: parser's outline and the photo's hem line differ by a few pixels on a sound parse
_HEM_TOLERANCE = 2
#: a boundary shorter than this (half-size pixels, 80 px of the full size) is no hem but a sliver where a hand or
#: a sleeve end crosses; it gives no score
_MIN_HEM = 40
_NEIGHBOURS = np.ones((3, 3), np.uint8)
_TOLERANCE = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * _HEM_TOLERANCE + 1, 2 * _HEM_TOLERANCE + 1))


def hem_edge(image: np.ndarray, parse: np.ndarray, cfg: QualityConfig) -> Outcome | None:
    """``hem_edge``: share of the parse's boundary between the top garment (upper clothes, dress, coat) and the
    bottom one (pants, skirt) that lies on an edge of the person photo.

    A top ends at its hem, which the photo shows as a line: a change of colour, or on a same-colour outfit the
    hem's fold and shadow. A boundary drawn through one uniform fabric - a white top's lower third parsed as
    white shorts, a black jacket's lower third as black trousers, a one-piece dress split into top and pants -
    runs along no edge. The evidence is the photo's own gradients (Canny), not the parser's output. A patterned
    fabric has edges everywhere, so a boundary through a print passes: the check can only see uniform fabric cut.
    """
    if image.shape[:2] != parse.shape:
        return None
    small = parse[::_HEM_SCALE, ::_HEM_SCALE]
    bottom = _BOTTOM_LUT[small]
    rows = np.flatnonzero(bottom.any(1))
    if len(rows) == 0:
        return None
    # only the rows around the bottom garment can hold the boundary: the top of the canvas is left out
    y0, y1 = max(0, int(rows[0]) - 2), min(small.shape[0], int(rows[-1]) + 3)
    top = _TOP_LUT[small[y0:y1]]
    if not top.any():
        return None
    boundary = (cv2.dilate(top.view(np.uint8), _NEIGHBOURS) > 0) & bottom[y0:y1]
    ys, xs = np.nonzero(boundary)
    if len(ys) < _MIN_HEM:
        return None
    # the photo's edges on the box around the boundary (grown so the blur and the tolerance see their neighbours)
    by0, by1 = max(0, int(ys.min()) - 8), min(boundary.shape[0], int(ys.max()) + 9)
    bx0, bx1 = max(0, int(xs.min()) - 8), min(boundary.shape[1], int(xs.max()) + 9)
    sy, sx = slice((y0 + by0) * _HEM_SCALE, (y0 + by1) * _HEM_SCALE), slice(bx0 * _HEM_SCALE, bx1 * _HEM_SCALE)
    grey = cv2.cvtColor(np.ascontiguousarray(image[sy, sx][::_HEM_SCALE, ::_HEM_SCALE]), cv2.COLOR_RGB2GRAY)
    # the thresholds photo_foreground uses on the garment photo: a fold's shadow on plain fabric passes 20/60
    edges = cv2.dilate(cv2.Canny(cv2.GaussianBlur(grey, (3, 3), 0), 20, 60), _TOLERANCE) > 0
    on_edge = edges & boundary[by0:by1, bx0:bx1]
    share = np.count_nonzero(on_edge) / len(ys)
    if share >= cfg.min_hem_edge:
        return Outcome("hem_edge", share)
    return Outcome("hem_edge", share, f"{100 * (1 - share):.0f} % of the boundary between the top garment and the "
                                      "trousers/skirt runs through plain fabric (no hem in the photo): one garment "
                                      "was split in two, e.g. a top's lower part parsed as trousers")


#: skin colour is compared at 1/8 of the size: a bare midriff or arm is thousands of pixels, colour needs no detail
_SKIN_SCALE = 8
#: OpenPose face points: 0..16 the jaw line (the face's outline), brows 17..26, eyes 36..47, outer lips 48..59
_JAW, _NOT_SKIN = slice(0, 17), (slice(17, 22), slice(22, 27), slice(36, 42), slice(42, 48), slice(48, 60))
#: spread added to the face's own (YCrCb levels): the body is in the photo's light but shaded a little
#: differently from the face (luma), and the face's chroma spread on a small face is a few pixels' worth
_SKIN_SPREAD = np.diag([10.0 ** 2, 2.0 ** 2, 2.0 ** 2])
#: squared Mahalanobis distance within which a pixel has the face's colour: chi-square, 3 degrees of freedom, 99 %
_SKIN_CHI2 = 11.34


def _skin_model(body: Body, image: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Mean and inverse covariance (YCrCb) of the face's skin: inside the jaw line, brows, eyes and lips left out
    (grown by a pixel: their edges blend into the skin), on the face's box at half size; None without the whole
    face in the keypoints (a head cut by the frame, a face turned away)."""
    face = body.kp.face
    h, w = image.shape[:2]
    if len(face) < 60 or not (face[:60, 2] > body.conf).all():
        return None
    xy = face[:60, :2]
    # pose.json is untrusted: points off the frame (a head cut by it) or not finite give no model
    if not (np.isfinite(xy).all() and (xy >= 0).all() and (xy[:, 0] < w).all() and (xy[:, 1] < h).all()):
        return None
    x0, y0 = np.floor(xy.min(0)).astype(int)
    x1, y1 = np.ceil(xy.max(0)).astype(int) + 1
    if x1 - x0 < 8 or y1 - y0 < 8 or x1 - x0 > w // 2:  # a face over half the photo's width is no wearer's
        return None
    crop = np.ascontiguousarray(image[y0:y1:2, x0:x1:2])
    pts = (face[:, :2] - (x0, y0)) / 2
    inside = np.zeros(crop.shape[:2], np.uint8)
    cv2.fillConvexPoly(inside, cv2.convexHull(pts[_JAW].astype(np.int32)), 1)
    out = np.zeros_like(inside)
    for part in _NOT_SKIN:
        cv2.fillConvexPoly(out, cv2.convexHull(pts[part].astype(np.int32)), 1)
    inside &= 1 - cv2.dilate(out, _NEIGHBOURS)
    skin = cv2.cvtColor(crop, cv2.COLOR_RGB2YCrCb)[inside > 0].astype(np.float64)
    if len(skin) < 50:  # a face under ~30 px across: too few pixels for a colour model
        return None
    return skin.mean(0), np.linalg.inv(np.cov(skin.T) + _SKIN_SPREAD)


def skin_in_garment(body: Body, image: np.ndarray, parse: np.ndarray, category: str,
                    cfg: QualityConfig) -> Outcome | None:
    """``skin_in_garment``: share of the parse's garment region (the category's garment labels) that has the
    colour of the wearer's face.

    The face's skin, found by the face keypoints (not by the parse), is the colour of the wearer's bare arms,
    midriff and legs under the same light. A garment region with a fifth of its pixels of that colour holds
    bare skin: a crop top's midriff, a bare arm, bare legs parsed as shorts. Luma counts as well as chroma, so a
    cream top on dark skin is told apart; a garment of the wearer's own skin tone and lightness would flag."""
    labels = GARMENT_LABELS.get(category)
    if labels is None or image.shape[:2] != parse.shape:
        return None
    small = np.ascontiguousarray(image[::_SKIN_SCALE, ::_SKIN_SCALE])
    garment = np.isin(parse[::_SKIN_SCALE, ::_SKIN_SCALE], labels)
    n = np.count_nonzero(garment)
    if n < 100:  # 6400 px at full size: no garment region worth judging
        return None
    model = _skin_model(body, image)
    if model is None:
        return None
    mean, inv = model
    d = cv2.cvtColor(small, cv2.COLOR_RGB2YCrCb)[garment].astype(np.float64) - mean
    share = np.count_nonzero(np.einsum("ij,jk,ik->i", d, inv, d) < _SKIN_CHI2) / n
    if share <= cfg.max_skin_in_garment:
        return Outcome("skin_in_garment", share)
    return Outcome("skin_in_garment", share, f"{100 * share:.0f} % of the parsed {category} garment has the colour "
                                             "of the wearer's face: bare skin (a midriff, an arm, legs) parsed as "
                                             "the garment")
