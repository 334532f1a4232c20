"""The lower_body and dresses agnostic maps: IDM-VTON's mask bounded by the parse and the pose.

IDM-VTON's ``get_mask_location('hd', category)`` (`masks_idm`) marks the worn garment dilated by 20 px (at 1024
rows), fills every hole of that region and, for ``lower_body``, adds both legs to the ankles. On a full-body photo
that greys the shoes (their outline parsed as garment, then the hole filled), the hands at the hips (enclosed by the
trousers) and the lower legs far below a knee-length hem. The bounds applied to it here, each from evidence
the garment labels do not carry (docs/masks.md):

- **Hem**: nothing below the garment's lowest solid row plus IDM's own dilation. "Solid" is the garment labels
  opened by a disc of 2 % of the image height, so the one-pixel garment contours a parser draws along legs and shoes
  do not count as garment.
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
#: CIHP labels of the worn garment (gt_cloth_warped_mask), as the derive stage names them
GARMENT_LABELS: dict[str, tuple[int, ...]] = {"lower_body": (9, 12), "dresses": (6,)}
#: CIHP labels IDM-VTON's recipe replaces per category (ATR 6/5 pants/skirt, + 7/4 dress/upper for dresses): the hem
#: is the lowest of them
_HEM_LABELS: dict[str, tuple[int, ...]] = {"lower_body": (9, 12), "dresses": (5, 6, 7, 9, 12)}
_SHOES = (18, 19)
_ARM_LABELS = (14, 15)
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
    pose = keypoints.pose
    for ankle, *foot in _FEET:
        pts = _present(pose, (ankle, *foot), w, h)
        toes_heel = _present(pose, tuple(foot), w, h)
        ankle_knee = _present(pose, (ankle, ankle - 1), w, h)
        shin = float(np.hypot(*(ankle_knee[0] - ankle_knee[1]))) if len(ankle_knee) == 2 else 0.0
        if len(toes_heel) >= 2:
            # a foot seen from the front is a thin hull: widen it to half a shoe's width, about 0.12 shin
            length = float(np.ptp(toes_heel, axis=0).max())
            _hull(keep, pts, max(3.0, 0.2 * length, 0.12 * shin))
        elif len(ankle_knee) == 2:
            # ankle only: a disc a little below it, of radius a fifth of the shin
            centre = ankle_knee[0] + (0.0, 0.1 * shin)
            cv2.circle(keep, tuple(int(round(v)) for v in centre), int(round(0.2 * shin)), 1, -1)
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
            keep |= disc & np.isin(parse, _ARM_LABELS).view(np.uint8)
    face = _present(keypoints.face, slice(0, 68), w, h)
    if len(face) >= 3:
        _hull(keep, face, 0.0)
    return keep.view(bool) | np.isin(parse, _SHOES)


def _hem_row(parse: np.ndarray, category: str) -> int | None:
    """Full-size row of the lowest solid garment pixel (None when the parse shows no solid garment)."""
    h, w = parse.shape
    small = cv2.resize(parse, _IDM_SIZE, interpolation=cv2.INTER_NEAREST)
    garment = np.isin(small, _HEM_LABELS[category]).view(np.uint8)
    d = max(3, int(round(_SOLID_FRACTION * _IDM_SIZE[1])) | 1)
    solid = cv2.morphologyEx(garment, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (d, d)))
    n, lab, stats, _ = cv2.connectedComponentsWithStats(solid, connectivity=8)
    if n <= 1:
        return None
    # the garment's pieces, not the blobs a parser leaves under the shoes: components of at least
    # _PIECE_FRACTION of the largest one
    areas = stats[1:, cv2.CC_STAT_AREA]
    pieces = np.flatnonzero(areas >= _PIECE_FRACTION * areas.max()) + 1
    bottom = stats[pieces, cv2.CC_STAT_TOP] + stats[pieces, cv2.CC_STAT_HEIGHT]
    return int(np.ceil(int(bottom.max()) * h / _IDM_SIZE[1]))


def category_mask(parse: np.ndarray, keypoints: OpenPoseKeypoints, category: str) -> np.ndarray:
    """The lower_body / dresses agnostic mask (True = inpaint): `idm_mask` bounded by the hem, feet, hands and face
    (module docstring). ``parse``: CIHP labels (HxW uint8); ``keypoints``: in the parse's pixels."""
    if category not in CATEGORIES:
        raise ValueError(f"category must be one of {', '.join(CATEGORIES)}; got {category!r}")
    parse = np.ascontiguousarray(parse, np.uint8)
    if parse.ndim != 2:
        raise ValueError(f"parse must be HxW, got shape {parse.shape}")
    h = parse.shape[0]
    mask = idm_mask(parse, keypoints.pose, category)
    hem = _hem_row(parse, category)
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
    mask = category_mask(parse, keypoints, category)
    agn = np.where(mask[..., None], np.uint8(128), img).astype(np.uint8)
    parse_agn = np.where(mask, 0, parse).astype(np.uint8)
    gt = np.isin(parse, GARMENT_LABELS[category]) & mask
    return agn, mask, parse_agn, gt
