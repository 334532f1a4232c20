"""The lower_body and dresses agnostic maps: IDM-VTON's mask bounded by the parse and the pose.

IDM-VTON's ``get_mask_location('hd', category)`` (`masks_idm`) marks the worn garment dilated by 20 px (at 1024
rows), fills every hole of that region and, for ``lower_body``, adds both legs to the ankles. On a full-body photo
that greys the shoes (their outline parsed as garment, then the hole filled), the hands at the hips (enclosed by the
trousers) and the lower legs far below a knee-length hem. The bounds applied to it here, each from evidence
the garment labels do not carry (docs/masks.md):

- **Hem**: nothing below the garment's lowest solid row plus IDM's own dilation. "Solid" is the garment labels
  opened by a disc of 2 % of the image height, so the one-pixel garment contours a parser draws along legs and shoes
  do not count as garment. A dress or skirt is one tube: where its label splits into two leg-wide runs whose colour
  differs from the tube's just above, those are legs parsed as it and the hem is above them (trouser legs parsed as
  a dress keep the fabric's colour and stay garment).
- **Feet**: per foot, the convex hull of heel, toes and ankle (BODY_25 11, 14, 19-24), widened by a fifth of the
  foot's length, and the parse's shoes (CIHP 18, 19) are kept.
- **Hands**: per hand, the convex hull of its 21 keypoints widened by a sixth of the hand's size (without hand
  keypoints: a disc beyond the wrist along the forearm) is kept.
- **Face**: the convex hull of the 68 face keypoints is kept (a head cut by the frame is parsed as neck).

``gt_cloth_warped_mask`` is the garment labels inside the bounded mask, so it never reaches outside ``agn_mask``.
Upper_body keeps HR-VITON's maps (`agnostic`); nothing here applies to it.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from .body25 import OpenPoseKeypoints, body25_to_coco18
from .masks_idm import cihp_to_idm_parse, get_mask_location

logger = logging.getLogger(__name__)

__all__ = ["CATEGORIES", "GARMENT_LABELS", "category_maps", "category_mask", "idm_mask"]

CATEGORIES: tuple[str, ...] = ("lower_body", "dresses")
#: CIHP labels of the worn garment (gt_cloth_warped_mask). A dress replaces the whole outfit: the parser decides
#: dress vs separates from the photo (the pair's category is only a prior), so for a person in separates the dress
#: label alone left gt empty; the outfit's labels are what IDM-VTON's dresses mask replaces too
GARMENT_LABELS: dict[str, tuple[int, ...]] = {"lower_body": (9, 12), "dresses": (5, 6, 7, 9, 12)}
#: CIHP labels IDM-VTON's recipe replaces per category (ATR 6/5 pants/skirt, + 7/4 dress/upper for dresses): the hem
#: is the lowest of them
_HEM_LABELS: dict[str, tuple[int, ...]] = {"lower_body": (9, 12), "dresses": (5, 6, 7, 9, 12)}
GRAY = 128                               # the agnostic image's grey (HR-VITON's 'gray')
_SHOES = (18, 19)
_TUBES = (6, 12)                         # dress, skirt: one tube around both legs
_TUBE_ROWS = 15                          # rows (at 512) of the tube whose colour the split rows are compared with
_LEG_DELTA_E = 15.0                      # median colour difference above which split rows are not the garment
_ARM_LABELS = (14, 15)
_GARMENT_ON_FEET = (5, 6, 9, 12)  # upper clothes, dress, pants, skirt: what may hang over a shoe
_IDM_SIZE = (384, 512)                   # get_mask_location's canvas (width, height)
_IDM_DILATION_ROWS = 10                  # its 5x5 dilation, 5 iterations: 10 px at 512 rows
_SOLID_FRACTION = 0.02                   # opening disc diameter / image height
_NECK_HEIGHT = 0.35                      # shoulder line to chin / shoulder width
_PIECE_FRACTION = 0.15                   # a garment piece's area / the largest piece's
# BODY_25 per side: ankle, big toe, small toe, heel; wrist and elbow
_FEET = ((11, 22, 23, 24), (14, 19, 20, 21))
_ARMS = ((4, 3), (7, 6))


def idm_mask(parse: np.ndarray, pose25: np.ndarray, category: str) -> np.ndarray:
    """IDM-VTON's ``get_mask_location('hd', category)`` on a CIHP parse and BODY_25 keypoints (pixels of the parse),
    computed at 384x512 and upsampled with nearest neighbour to the parse's size (True = inpaint)."""
    h, w = parse.shape
    coco = body25_to_coco18(pose25)
    pose18 = coco[:, :2] * np.array([_IDM_SIZE[0] / w, _IDM_SIZE[1] / h], np.float32)
    pose18[coco[:, 2] <= 0] = 0
    small = get_mask_location("hd", category, cihp_to_idm_parse(parse), pose18, *_IDM_SIZE)
    return cv2.resize(small.view(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).view(bool)


def _in(labels: np.ndarray, values: tuple[int, ...]) -> np.ndarray:
    """np.isin(labels, values) for a uint8 label map, as one 256-entry table look-up (several times faster)."""
    table = np.zeros(256, np.uint8)
    table[list(values)] = 1
    return cv2.LUT(labels, table).view(bool)


def _present(kp: np.ndarray, idx: tuple[int, ...] | slice, w: int, h: int) -> np.ndarray:
    """(N, 2) coordinates of the keypoints ``idx`` that were detected and are finite; the frame is not a limit."""
    pts = np.asarray(kp, np.float64)[list(idx) if isinstance(idx, tuple) else idx]
    ok = (pts[:, 2] > 0) & np.isfinite(pts[:, :2]).all(axis=1) & (np.abs(pts[:, :2]) < 4 * max(w, h)).all(axis=1)
    return pts[ok, :2]


def _hull(canvas: np.ndarray, pts: np.ndarray, grow: float) -> None:
    """Fill the convex hull of ``pts`` widened by ``grow`` px (a rounded outline) into ``canvas`` (uint8, 1)."""
    hull = cv2.convexHull(np.round(pts).astype(np.int32).reshape(-1, 1, 2))
    cv2.fillConvexPoly(canvas, hull, 1)
    g = int(round(grow))
    if g > 0:
        cv2.polylines(canvas, [hull], True, 1, thickness=2 * g + 1)


def _kept(keypoints: OpenPoseKeypoints, parse: np.ndarray) -> np.ndarray:
    """Pixels the bounded mask never covers: feet and shoes, hands, face."""
    h, w = parse.shape
    keep = np.zeros((h, w), np.uint8)
    feet = np.zeros((h, w), np.uint8)
    pose = keypoints.pose
    for ankle, *foot in _FEET:
        pts = _present(pose, (ankle, *foot), w, h)
        toes_heel = _present(pose, tuple(foot), w, h)
        ankle_knee = _present(pose, (ankle, ankle - 1), w, h)
        shin = float(np.hypot(*(ankle_knee[0] - ankle_knee[1]))) if len(ankle_knee) == 2 else 0.0
        if len(toes_heel) >= 2:
            # a foot seen from the front is a thin hull: widen it to half a shoe's width, about 0.12 shin
            length = float(np.ptp(toes_heel, axis=0).max())
            _hull(feet, pts, max(3.0, 0.2 * length, 0.12 * shin))
        elif len(ankle_knee) == 2:
            # ankle only: a disc a little below it, of radius a fifth of the shin
            centre = ankle_knee[0] + (0.0, 0.1 * shin)
            cv2.circle(feet, tuple(int(round(v)) for v in centre), int(round(0.2 * shin)), 1, -1)
    # the ankle keypoint lies inside a trouser hem that falls over the shoe: the feet hulls keep no garment pixel,
    # or the old hem stays visible in agn.jpg (the parse's shoes are kept below whatever they are)
    keep |= feet & ~_in(parse, _GARMENT_ON_FEET).view(np.uint8)
    for hand, (wrist, elbow) in zip((keypoints.hand_right, keypoints.hand_left), _ARMS, strict=True):
        pts = _present(hand, slice(None), w, h)
        if len(pts) >= 5:
            _hull(keep, pts, max(3.0, float(np.ptp(pts, axis=0).max()) / 6))
            continue
        arm = _present(pose, (wrist, elbow), w, h)
        if len(arm) == 2:
            # no hand keypoints (often a hand in a pocket): the arm-labelled pixels beyond the wrist, within
            # 0.4 forearm of it, are kept; a hidden hand has none
            forearm = arm[0] - arm[1]
            centre = arm[0] + 0.4 * forearm
            disc = np.zeros((h, w), np.uint8)
            cv2.circle(disc, tuple(int(round(v)) for v in centre), int(round(0.4 * np.hypot(*forearm))), 1, -1)
            keep |= disc & _in(parse, _ARM_LABELS).view(np.uint8)
    face = _present(keypoints.face, slice(0, 68), w, h)
    if len(face) >= 3:
        _hull(keep, face, 0.0)
    return keep.view(bool) | _in(parse, _SHOES)


def _hem_row(parse: np.ndarray, category: str, image: np.ndarray | None) -> int | None:
    """Full-size row of the lowest solid garment pixel (None when the parse shows no solid garment).

    A dress or skirt (CIHP 6, 12) is one tube as wide as itself: rows below its last such row, split in two or as
    narrow as one leg, are either its wearer's legs parsed as it or trouser legs parsed as a dress. With ``image``,
    they end the garment when their colour differs from the tube's just above (skin under a dress, Delta E above
    _LEG_DELTA_E); without it they count as garment.
    """
    h = parse.shape[0]
    small = cv2.resize(parse, _IDM_SIZE, interpolation=cv2.INTER_NEAREST)
    garment = _in(small, _HEM_LABELS[category]).view(np.uint8)
    d = max(3, int(round(_SOLID_FRACTION * _IDM_SIZE[1])) | 1)
    solid = cv2.morphologyEx(garment, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (d, d)))
    n, lab, stats, _ = cv2.connectedComponentsWithStats(solid, connectivity=8)
    if n <= 1:
        return None
    # the garment's pieces, not the blobs a parser leaves under the shoes: components of at least
    # _PIECE_FRACTION of the largest one
    areas = stats[:, cv2.CC_STAT_AREA].astype(np.float64)
    areas[0] = 0
    kept = (areas >= _PIECE_FRACTION * areas.max())[lab]
    rows = np.flatnonzero(kept.any(axis=1))
    tube = kept & _in(small, _TUBES)
    t = tube.view(np.uint8)
    runs = t[:, 0] + (t[:, 1:] > t[:, :-1]).sum(axis=1)
    widths = t.sum(axis=1)
    single = np.flatnonzero(runs == 1)
    if single.size:
        single = single[widths[single] >= 0.5 * np.median(widths[single])]
    bottom = rows[-1] + 1
    if image is not None and single.size and t[single[-1] + 1:].any():
        last = single[-1]
        rows_other = np.flatnonzero((kept & ~tube).any(axis=1))
        lab_img = cv2.cvtColor(cv2.resize(np.ascontiguousarray(image, np.uint8), _IDM_SIZE,
                                          interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2LAB).astype(np.float32)
        lab_img[..., 0] *= 100.0 / 255.0
        above = np.median(lab_img[max(0, last - _TUBE_ROWS):last + 1][tube[max(0, last - _TUBE_ROWS):last + 1]], 0)
        below = np.median(lab_img[last + 1:][tube[last + 1:]], axis=0)
        if float(np.linalg.norm(above - below)) > _LEG_DELTA_E:
            bottom = max(last + 1, rows_other[-1] + 1 if rows_other.size else 0)
    return int(np.ceil(int(bottom) * h / _IDM_SIZE[1]))


def category_mask(parse: np.ndarray, keypoints: OpenPoseKeypoints, category: str,
                  image: np.ndarray | None = None) -> np.ndarray:
    """The lower_body / dresses agnostic mask (True = inpaint): `idm_mask` bounded by the hem, feet, hands and face
    (module docstring). ``parse``: CIHP labels (HxW uint8); ``keypoints``: in the parse's pixels; ``image``: the
    photo (HxWx3 RGB), whose colours tell legs parsed as a dress from trouser legs (`_hem_row`)."""
    if category not in CATEGORIES:
        raise ValueError(f"category must be one of {', '.join(CATEGORIES)}; got {category!r}")
    parse = np.ascontiguousarray(parse, np.uint8)
    if parse.ndim != 2:
        raise ValueError(f"parse must be HxW, got shape {parse.shape}")
    h = parse.shape[0]
    mask = idm_mask(parse, keypoints.pose, category)
    hem = _hem_row(parse, category, image)
    if hem is not None:
        mask[min(h, hem + int(round(_IDM_DILATION_ROWS * h / _IDM_SIZE[1]))):] = False
    else:
        logger.debug("category_mask: no solid %s garment in the parse; the hem bound is not applied", category)
    shoulders = _present(keypoints.pose, (2, 5), parse.shape[1], h)
    if len(shoulders) == 2:
        # the chin lies about 0.4 shoulder widths above the shoulders: a head cut by the frame (no face keypoints,
        # parsed as neck) keeps its chin and mouth; the neck below stays in the mask for the neckline
        top = shoulders[:, 1].min() - _NECK_HEIGHT * float(np.hypot(*(shoulders[0] - shoulders[1])))
        mask[:max(0, min(h, int(np.floor(top))))] = False
    mask &= ~_kept(keypoints, parse)
    return mask


def category_maps(image: np.ndarray, parse: np.ndarray, keypoints: OpenPoseKeypoints, category: str
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(agn, agn_mask, parse_agn, gt_cloth_warped_mask) for ``lower_body`` / ``dresses``: the photo greyed (128)
    under `category_mask`, the parse cleared under it, and the garment labels inside it."""
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.shape[:2] != np.shape(parse):
        raise ValueError(f"image {img.shape} and parse {np.shape(parse)} must be HxWx3 and HxW of one size")
    parse = np.ascontiguousarray(parse, np.uint8)
    mask = category_mask(parse, keypoints, category, img)
    m8 = mask.view(np.uint8)
    # out[mask] = value as cv2.copyTo: several times faster than numpy's masked assignment on a full frame
    agn = np.array(img, np.uint8, order="C")
    cv2.copyTo(np.full(agn.shape, GRAY, np.uint8), m8, agn)
    parse_agn = parse.copy()
    cv2.copyTo(np.zeros(parse.shape, np.uint8), m8, parse_agn)
    gt = _in(parse, GARMENT_LABELS[category]) & mask
    return agn, mask, parse_agn, gt
