"""The masks judged against independent evidence: the agnostic mask against face, hand and foot keypoints and the
person's extent, gt_cloth_warped_mask against agn_mask, and the cloth mask against the garment photo's own
foreground."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from vitonprep.quality.config import QualityConfig
from vitonprep.quality.geometry import Body, labels_at
from vitonprep.quality.report import Outcome

__all__ = ["agnostic_keeps", "agnostic_body", "gt_inside_agn", "cloth_mask_fit", "cloth_mask_symmetry",
           "photo_foreground"]

#: OpenPose face points 17..67: brows, nose, eyes, mouth (0..16 is the jaw line, which the neck region may touch)
_INNER_FACE = slice(17, 68)
_SLIVER = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))
_FEET = ("LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel")


def _share_inside(mask: np.ndarray, pts: np.ndarray) -> float | None:
    vals = labels_at(mask.astype(np.uint8), pts)
    return float(vals.mean()) if len(vals) >= 3 else None


def _beyond_wrist_disc(body: Body, hand: str) -> np.ndarray:
    """The hand's keypoints outside the disc HR-VITON's agnostic keeps grey at its wrist on purpose (radius 4 r,
    r = int(shoulder width / 16) + 1; vitonprep/derive/agnostic.py, step 6), plus 2 px of rounding: a hand on the
    hip or in a pocket lies in it, on the official VITON-HD agnostic images too."""
    pts = body.part_xy(hand)
    wrist = "LWrist" if hand == "hand_left" else "RWrist"
    if not len(pts) or not body.has("RShoulder", "LShoulder", wrist):
        return pts
    r = int(np.hypot(*(body.xy("LShoulder") - body.xy("RShoulder"))) / 16) + 1
    return pts[np.hypot(*(pts - body.xy(wrist)).T) > 4 * r + 2]


def agnostic_keeps(body: Body, agn_mask: np.ndarray, category: str, cfg: QualityConfig) -> list[Outcome]:
    """``agn_face`` / ``agn_hands`` / ``agn_shoes``: share of those keypoints inside the region to repaint."""
    out = []
    face = _share_inside(agn_mask, body.part_xy("face", _INNER_FACE))
    if face is not None:
        out.append(Outcome("agn_face", face, f"the agnostic mask covers {100 * face:.0f} % of the face"
                           if face > cfg.max_agn_face else None))
    hands = np.concatenate([_beyond_wrist_disc(body, side) if category == "upper_body" else body.part_xy(side)
                            for side in ("hand_left", "hand_right")])
    share = _share_inside(agn_mask, hands)
    if share is not None:
        out.append(Outcome("agn_hands", share, f"the agnostic mask covers {100 * share:.0f} % of the hand keypoints"
                           if share > cfg.max_agn_hands else None))
    if category in ("lower_body", "dresses"):
        feet = np.array([body.xy(n) for n in _FEET if body.in_frame(n)]).reshape(-1, 2)
        share = _share_inside(agn_mask, feet)
        if share is not None:
            out.append(Outcome("agn_shoes", share, f"the {category} agnostic mask covers {100 * share:.0f} % of the "
                               "feet: the shoes are repainted" if share > cfg.max_agn_shoes else None))
    return out


def agnostic_body(agn_mask: np.ndarray, parse: np.ndarray, cfg: QualityConfig) -> Outcome | None:
    """``agn_body``: agn_mask area over the person's area (non-background parse)."""
    body, agn = parse[::2, ::2] != 0, agn_mask[::2, ::2]  # every other pixel: an area ratio needs no more
    person = np.count_nonzero(body)
    if person < 250:
        return None
    ratio = np.count_nonzero(agn & body) / person
    if ratio <= cfg.max_agn_body:
        return Outcome("agn_body", ratio)
    return Outcome("agn_body", ratio, f"the agnostic mask swallows {100 * ratio:.0f} % of the person")


def gt_inside_agn(gt: np.ndarray, agn_mask: np.ndarray, cfg: QualityConfig) -> Outcome | None:
    """``gt_outside_agn``: share of the worn-garment mask outside the region to repaint, in solid regions only.

    Slivers under 9 px wide along the edge are where the agnostic's drawn polygons and the parse disagree by a
    few pixels (the IDM-VTON recipe leaves one at the frame's bottom edge); an opening removes them.
    """
    n = np.count_nonzero(gt)
    if n == 0:
        return None
    outside = (gt & ~agn_mask).view(np.uint8)
    raw = np.count_nonzero(outside)
    solid = 0
    if raw:
        # the opening only needs the box around the outside pixels (grown by the kernel): a few rows, not the canvas
        ys, xs = np.nonzero(outside.any(1))[0], np.nonzero(outside.any(0))[0]
        y0, y1 = max(0, ys[0] - 9), min(outside.shape[0], ys[-1] + 10)
        x0, x1 = max(0, xs[0] - 9), min(outside.shape[1], xs[-1] + 10)
        solid = np.count_nonzero(cv2.morphologyEx(outside[y0:y1, x0:x1], cv2.MORPH_OPEN, _SLIVER))
    share = solid / n
    if share <= cfg.max_gt_outside_agn:
        return Outcome("gt_outside_agn", share)
    return Outcome("gt_outside_agn", share, f"gt_cloth_warped_mask reaches {raw} px outside agn_mask "
                                            f"({solid} px in solid regions): that garment stays visible in agn.jpg")


#: the cloth-mask check works at a quarter of the size: an outline missed by 4 px is no defect, and it is 16x cheaper
_SCALE = 4


def photo_foreground(rgb: np.ndarray) -> np.ndarray:
    """Pixels unlike the photo's border colour, or on an edge, away from the border (the garment's own evidence),
    at 1/_SCALE of the size.

    Unlike the cloth-mask back-ends it fits no background surface, uses no texture measure and fills no holes: it
    only marks where something is, so a mask that stops inside the garment leaves such pixels outside it.
    """
    h, w = rgb.shape[:2]
    # a garment photo under _SCALE px a side (untrusted input) still gives a one-pixel image, not a cv2 error
    small = cv2.resize(rgb, (max(1, w // _SCALE), max(1, h // _SCALE)), interpolation=cv2.INTER_AREA)
    blur = cv2.GaussianBlur(small, (3, 3), 0)
    band = max(2, min(small.shape[:2]) // 64)
    border = np.concatenate([blur[:band].reshape(-1, 3), blur[-band:].reshape(-1, 3),
                             blur[:, :band].reshape(-1, 3), blur[:, -band:].reshape(-1, 3)]).astype(np.int16)
    bg = np.median(border, axis=0)
    tol = max(12.0, 3.0 * float(np.median(np.abs(border - bg).max(axis=1))))
    # the largest channel difference from the border colour (per channel with OpenCV: numpy's max over the last
    # axis of an image is ten times slower)
    ref = np.empty_like(blur)
    ref[:] = np.round(bg).astype(np.uint8)
    diff = cv2.absdiff(blur, ref)
    fg = cv2.max(cv2.max(diff[..., 0], diff[..., 1]), diff[..., 2]) > tol
    edges = cv2.Canny(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY), 20, 60) > 0
    ev = fg | edges
    ev[:2 * band] = ev[-2 * band:] = False
    ev[:, :2 * band] = ev[:, -2 * band:] = False
    return ev


def cloth_mask_fit(cloth: np.ndarray, cloth_mask: np.ndarray, cfg: QualityConfig,
                   memo: dict[str, Any] | None = None) -> Outcome | None:
    """``cloth_mask_fit``: share of the garment photo's foreground evidence inside the (slightly grown) mask.
    ``memo``: the garment photo's memo (PhotoModels.garment_memo), where its foreground is kept."""
    memo = {} if memo is None else memo
    if "foreground" not in memo:
        memo["foreground"] = photo_foreground(cloth)
    ev = memo["foreground"]
    n = np.count_nonzero(ev)
    if n < 500 // _SCALE:
        return None
    # every _SCALE-th pixel: the mask is grown below, which covers more than the pixels skipped
    small = np.ascontiguousarray(cloth_mask[::_SCALE, ::_SCALE][:ev.shape[0], :ev.shape[1]]).view(np.uint8)
    grow = max(1, cloth.shape[1] // (50 * _SCALE))  # a mask edge a few pixels inside the garment's outline is fine
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
    grown = cv2.dilate(small, kernel) > 0
    share = np.count_nonzero(ev & grown) / n
    if share >= cfg.min_cloth_mask_fit:
        return Outcome("cloth_mask_fit", share)
    return Outcome("cloth_mask_fit", share, f"{100 * (1 - share):.0f} % of the garment photo's foreground lies "
                                            "outside cloth_mask: the mask misses part of the garment")


#: the symmetry axis is searched within this share of the width around the canvas centre: shops centre the garment
#: in its photo and the build's fit pads it to the canvas centre
_AXIS_SEARCH = 0.05


def cloth_mask_symmetry(cloth_mask: np.ndarray, cfg: QualityConfig) -> Outcome | None:
    """``cloth_mask_symmetry``: IoU of the cloth mask with its mirror image about the vertical axis near the
    canvas centre that fits it best.

    A shop photo shows the garment flat, from the front and centred, so its outline is left-right symmetric up to
    drape and angle. A mask that stops at a white garment's edge on a white ground, or leaves a sleeve out, is not.
    The axis comes from the canvas, not from the mask: mirrored about its own middle, a mask missing a whole side
    can look symmetric."""
    # every 8th pixel: a sleeve is a hundred pixels wide, an outline's symmetry needs no finer grid
    small = np.ascontiguousarray(cloth_mask[::8, ::8])
    total = np.count_nonzero(small)
    if total < 25:
        return None
    w = small.shape[1]
    best = 0.0
    reach = int(_AXIS_SEARCH * w)
    for shift in range(-reach, reach + 1):
        # the axis at column (w + shift - 1) / 2 (half-column steps): column x mirrors to w + shift - 1 - x
        lo, hi = max(0, shift), min(w, w + shift)
        part = small[:, lo:hi]
        inter = np.count_nonzero(part & part[:, ::-1])
        best = max(best, inter / (2 * total - inter))  # mirrored pixels off the canvas count in the union
    if best >= cfg.min_cloth_mask_symmetry:
        return Outcome("cloth_mask_symmetry", best)
    return Outcome("cloth_mask_symmetry", best, f"cloth_mask is lopsided (IoU {best:.2f} with its mirror image): "
                                                "a flat garment photo is left-right symmetric, so the mask misses "
                                                "part of one side")
