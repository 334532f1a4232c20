"""Clothing-agnostic person image, its binary mask, parse-agnostic and the worn-cloth mask.

Sources: HR-VITON ``cp_dataset.get_agnostic``, ``get_parse_agnostic.py``,
the agnostic mask as the gray area of the agnostic image, StableVITON
``gt_cloth_warped_mask`` (docs/architecture.md, "Agnostic mask").
"""

from __future__ import annotations

import logging
from typing import Iterable

import cv2
import numpy as np
from PIL import Image, ImageDraw

logger = logging.getLogger(__name__)

__all__ = ["agnostic_image", "agnostic_mask", "agnostic_image_and_mask", "parse_agnostic",
           "gt_cloth_warped_mask"]

GRAY = 128  # PIL colour name 'gray' = (128, 128, 128)

_HEAD_LABELS = (4, 13)                      # sunglasses, face
_LOWER_LABELS = (9, 12, 16, 17, 18, 19)     # pants, skirt, legs, shoes
_PARSE_AGNOSTIC_CLEAR = (5, 6, 7, 10)       # upper clothes, dress, coat, neck


def _pose_xy(pose25: np.ndarray) -> np.ndarray:
    """(25,2|3) keypoints -> float64 (25,2).

    float32 values are first turned back into their shortest decimal, so keypoints read
    from an OpenPose JSON give exactly the float64 numbers HR-VITON works with.
    """
    p = np.asarray(pose25)
    if p.ndim != 2 or p.shape[0] < 25 or p.shape[1] not in (2, 3):
        raise ValueError(f"expected BODY_25 keypoints of shape (25, 2|3), got {p.shape}")
    xy = p[:25, :2]
    if xy.dtype == np.float32:
        return np.array([[float(str(v)) for v in row] for row in xy], dtype=np.float64)
    return xy.astype(np.float64)


def _missing(p: np.ndarray, i: int) -> bool:
    return p[i, 0] == 0.0 and p[i, 1] == 0.0


def _check_parse(parse: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    a = np.asarray(parse)
    if a.shape != tuple(hw):
        raise ValueError(f"parse shape {a.shape} does not match image size {tuple(hw)}")
    return a


def _lut(values: Iterable[int], hit: int = 1, miss: int = 0) -> np.ndarray:
    t = np.full(256, miss, np.uint8)
    t[list(values)] = hit
    return t


_RESTORE_LUT = _lut(_HEAD_LABELS + _LOWER_LABELS)
# parse -> parse with labels 5, 6, 7, 10 cleared (identity elsewhere)
_PARSE_AGNOSTIC_LUT = np.arange(256, dtype=np.uint8)
_PARSE_AGNOSTIC_LUT[list(_PARSE_AGNOSTIC_CLEAR)] = 0


def _in(labels: np.ndarray, values: tuple[int, ...], lut: np.ndarray | None = None) -> np.ndarray:
    """np.isin(labels, values) as bool; a 256-entry cv2.LUT for uint8 label maps (10x faster)."""
    if labels.dtype == np.uint8:
        return cv2.LUT(labels, _lut(values) if lut is None else lut).view(bool)
    return np.isin(labels, values)


def _drawn_box(canvas: Image.Image) -> tuple[int, int, int, int] | None:
    """Bounding box (x0, y0, x1, y1) of the non-zero pixels of an 'L' canvas, None when empty."""
    return canvas.getbbox()


def _agnostic_region_box(hw: tuple[int, int], parse: np.ndarray, pose25: np.ndarray
                         ) -> tuple[tuple[int, int, int, int] | None, np.ndarray | None]:
    """The single drawing routine behind agnostic_image and agnostic_mask.

    HR-VITON get_agnostic with the gray shapes drawn as 255 on an 'L'
    canvas in the same call order, then the paste-back rules applied as clears.
    Returns the bounding box (x0, y0, x1, y1) of everything drawn and the bool region
    that ends up gray inside that box (None, None when nothing is drawn). The drawing
    is made on full-size canvases exactly as HR-VITON does; only the paste-back rules,
    which can only clear drawn pixels, are evaluated inside the box.
    """
    h, w = hw
    parse = _check_parse(parse, hw)
    p = _pose_xy(pose25).copy()
    for i, name in ((1, "neck"), (2, "right shoulder"), (5, "left shoulder"),
                    (9, "right hip"), (12, "left hip")):
        if _missing(p, i):
            raise ValueError(f"agnostic needs the {name} (BODY_25 joint {i}); it is missing")

    # 1. hip normalisation: hip distance becomes the shoulder distance
    length_a = float(np.linalg.norm(p[5] - p[2]))
    length_b = float(np.linalg.norm(p[12] - p[9]))
    if length_b == 0.0:
        raise ValueError("agnostic: hip width is 0 (joints 9 and 12 coincide)")
    mid = (p[9] + p[12]) / 2
    p[9] = mid + (p[9] - mid) / length_b * length_a
    p[12] = mid + (p[12] - mid) / length_b * length_a
    # 2. radius unit
    r = int(length_a / 16) + 1

    def pt(i: int) -> tuple[float, float]:
        return (float(p[i, 0]), float(p[i, 1]))

    canvas = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    ink = 255
    # 3. torso
    for i in (9, 12):
        x, y = pt(i)
        draw.ellipse((x - r * 3, y - r * 6, x + r * 3, y + r * 6), ink, ink)
    draw.line([pt(2), pt(9)], ink, width=r * 6)
    draw.line([pt(5), pt(12)], ink, width=r * 6)
    draw.line([pt(9), pt(12)], ink, width=r * 12)
    draw.polygon([pt(2), pt(5), pt(12), pt(9)], ink, ink)
    # 4. neck
    x, y = pt(1)
    draw.rectangle((x - r * 5, y - r * 9, x + r * 5, y), ink, ink)
    # 5. arms
    draw.line([pt(2), pt(5)], ink, width=r * 12)
    for i in (2, 5):
        x, y = pt(i)
        draw.ellipse((x - r * 5, y - r * 6, x + r * 5, y + r * 6), ink, ink)
    for i in (3, 4, 6, 7):
        if _missing(p, i - 1) or _missing(p, i):
            continue
        draw.line([pt(i - 1), pt(i)], ink, width=r * 10)
        x, y = pt(i)
        draw.ellipse((x - r * 5, y - r * 5, x + r * 5, y + r * 5), ink, ink)
    box = _drawn_box(canvas)
    if box is None:
        return None, None
    x0, y0, x1, y1 = box
    region = np.asarray(canvas.crop(box)) > 0
    parse_box = parse[y0:y1, x0:x1]

    # 6. hand restoration: arm pixels outside the (slightly smaller) drawn arm come back
    for label, chain in ((14, (5, 6, 7)), (15, (2, 3, 4))):
        arm = Image.new("L", (w, h), 255)
        arm_draw = ImageDraw.Draw(arm)
        x, y = pt(chain[0])
        arm_draw.ellipse((x - r * 5, y - r * 6, x + r * 5, y + r * 6), 0, 0)
        for i in chain[1:]:
            if _missing(p, i - 1) or _missing(p, i):
                continue
            arm_draw.line([pt(i - 1), pt(i)], 0, width=r * 10)
            x, y = pt(i)
            if i != chain[-1]:
                arm_draw.ellipse((x - r * 5, y - r * 5, x + r * 5, y + r * 5), 0, 0)
        # (x, y) is the last joint reached above (the shoulder if none was drawn)
        arm_draw.ellipse((x - r * 4, y - r * 4, x + r * 4, y + r * 4), 0, 0)
        is_label = parse_box == label
        if is_label.any():
            region &= ~((np.asarray(arm.crop(box)) > 0) & is_label)

    # 7. face / sunglasses and the lower body are pasted back
    region &= ~_in(parse_box, _HEAD_LABELS + _LOWER_LABELS, _RESTORE_LUT)
    return box, region


def _agnostic_region(hw: tuple[int, int], parse: np.ndarray, pose25: np.ndarray) -> np.ndarray:
    """Full-size bool region that ends up gray (see `_agnostic_region_box`)."""
    box, region = _agnostic_region_box(hw, parse, pose25)
    out = np.zeros((int(hw[0]), int(hw[1])), bool)
    if box is not None:
        x0, y0, x1, y1 = box
        out[y0:y1, x0:x1] = region
    return out


def _check_image(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {img.shape}")
    return img


def agnostic_image_and_mask(image: np.ndarray, parse: np.ndarray,
                            pose25: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(agnostic_image, agnostic_mask) from one drawing: identical to calling
    :func:`agnostic_image` and :func:`agnostic_mask`, at about half the cost."""
    img = _check_image(image)
    h, w = img.shape[:2]
    box, region = _agnostic_region_box((h, w), parse, pose25)
    out = img.astype(np.uint8, order="C", copy=True)
    mask = np.zeros((h, w), bool)
    if box is not None:
        x0, y0, x1, y1 = box
        mask[y0:y1, x0:x1] = region
        _paint_gray(out, mask, y0, y1)
    return out, mask


def _paint_gray(out: np.ndarray, mask: np.ndarray, y0: int, y1: int) -> None:
    """out[mask] = GRAY in place, for a C-contiguous uint8 HxWx3 ``out`` whose mask rows
    outside y0:y1 are all False (cv2.copyTo on the contiguous row band)."""
    band = out[y0:y1]
    gray = np.full(band.shape, GRAY, np.uint8)
    cv2.copyTo(gray, mask[y0:y1].view(np.uint8), band)


def agnostic_image(image: np.ndarray, parse: np.ndarray, pose25: np.ndarray) -> np.ndarray:
    """agnostic-v3.2: the person with a gray (128,128,128) clothing-agnostic region.

    HR-VITON ``cp_dataset.get_agnostic``, at the image's own size. Raises
    ValueError when the neck, a shoulder or a hip is missing, or the hip width is 0.
    Use :func:`agnostic_image_and_mask` when the mask is needed as well.
    """
    return agnostic_image_and_mask(image, parse, pose25)[0]


def agnostic_mask(image_shape_hw: tuple[int, ...], parse: np.ndarray,
                  pose25: np.ndarray) -> np.ndarray:
    """agnostic-mask (True = region to inpaint) = exactly the gray region of
    :func:`agnostic_image`. Same errors as agnostic_image."""
    return _agnostic_region((int(image_shape_hw[0]), int(image_shape_hw[1])), parse, pose25)


def parse_agnostic(parse: np.ndarray, pose25: np.ndarray) -> np.ndarray:
    """image-parse-agnostic-v3.2 from a CIHP parse (HR-VITON get_parse_agnostic).

    r = 10: per arm chain, white lines of width 100 and discs of radius 150 (40 at the
    wrist) mark the arm; arm-label pixels inside become 0. A missing joint is bridged,
    a missing first joint disables the chain. Then labels 5, 6, 7 and 10 become 0.
    """
    labels = np.asarray(parse)
    if labels.ndim != 2:
        raise ValueError(f"parse must be HxW, got shape {labels.shape}")
    h, w = labels.shape
    p = _pose_xy(pose25)
    r = 10
    if labels.dtype == np.uint8:
        # labels 5, 6, 7, 10 -> 0 in one table look-up (the order of the clears does not matter)
        out = cv2.LUT(labels, _PARSE_AGNOSTIC_LUT)
    else:
        out = labels.astype(np.uint8, copy=True)
        out[np.isin(labels, _PARSE_AGNOSTIC_CLEAR)] = 0
    for label, chain in ((14, (2, 5, 6, 7)), (15, (5, 2, 3, 4))):
        canvas = Image.new("L", (w, h), 0)
        draw = ImageDraw.Draw(canvas)
        prev = chain[0]
        for i in chain[1:]:
            if _missing(p, prev) or _missing(p, i):
                continue
            draw.line([(float(p[prev, 0]), float(p[prev, 1])), (float(p[i, 0]), float(p[i, 1]))], 255, width=r * 10)
            x, y = float(p[i, 0]), float(p[i, 1])
            radius = r * 4 if i == chain[-1] else r * 15
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), 255, 255)
            prev = i
        box = _drawn_box(canvas)
        if box is None:
            continue
        x0, y0, x1, y1 = box
        # only drawn pixels can be cleared: evaluate inside the drawing's bounding box
        clear = (np.asarray(canvas.crop(box)) > 0) & (labels[y0:y1, x0:x1] == label)
        out[y0:y1, x0:x1][clear] = 0
    return out


def gt_cloth_warped_mask(parse: np.ndarray, labels: Iterable[int] = (5, 6, 7),
                         agn_mask: np.ndarray | None = None) -> np.ndarray:
    """Worn-garment silhouette (StableVITON gt_cloth_warped_mask): parse ∈ labels. With ``agn_mask`` (upper_body
    builds), the dress label (6) counts only inside it: a dress's skirt, or trousers the parser merged into one
    dress, lie below the upper-body region that is inpainted and stay visible in agn.jpg, so the new top cannot
    cover them. Upper clothes and coat count wherever they are, so a garment label spilling outside the region
    (a parse defect) still shows as gt outside agn_mask for the quality gate."""
    parse = np.asarray(parse)
    labels = tuple(labels)
    if agn_mask is None or 6 not in labels:
        return np.isin(parse, labels)
    return np.isin(parse, tuple(v for v in labels if v != 6)) | ((parse == 6) & np.asarray(agn_mask, bool))
