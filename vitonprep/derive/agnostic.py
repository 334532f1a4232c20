"""Clothing-agnostic person image, its binary mask, parse-agnostic and the worn-cloth mask.

Sources: HR-VITON ``cp_dataset.get_agnostic`` (spec §1.6), ``get_parse_agnostic.py``
(spec §1.7), agnostic-mask reconstruction (spec §1.8), StableVITON
``gt_cloth_warped_mask`` reconstruction (spec §1.10).
"""

from __future__ import annotations

import logging
from typing import Iterable

import numpy as np
from PIL import Image, ImageDraw

logger = logging.getLogger(__name__)

__all__ = ["agnostic_image", "agnostic_mask", "parse_agnostic", "gt_cloth_warped_mask"]

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


def _agnostic_region(hw: tuple[int, int], parse: np.ndarray, pose25: np.ndarray) -> np.ndarray:
    """The single drawing routine behind agnostic_image and agnostic_mask.

    HR-VITON get_agnostic (spec §1.6) with the gray shapes drawn as 255 on an 'L'
    canvas in the same call order, then the paste-back rules applied as clears.
    Returns the bool region that ends up gray.
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
    region = np.array(canvas) > 0

    # 6. hand restoration: arm pixels outside the (slightly smaller) drawn arm come back
    restore = np.zeros((h, w), bool)
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
        restore |= (np.array(arm) > 0) & (parse == label)

    # 7. face / sunglasses and the lower body are pasted back
    restore |= np.isin(parse, _HEAD_LABELS) | np.isin(parse, _LOWER_LABELS)
    return region & ~restore


def agnostic_image(image: np.ndarray, parse: np.ndarray, pose25: np.ndarray) -> np.ndarray:
    """agnostic-v3.2: the person with a gray (128,128,128) clothing-agnostic region.

    HR-VITON ``cp_dataset.get_agnostic`` (spec §1.6), at the image's own size. Raises
    ValueError when the neck, a shoulder or a hip is missing, or the hip width is 0.
    """
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {img.shape}")
    region = _agnostic_region(img.shape[:2], parse, pose25)
    out = img.astype(np.uint8, copy=True)
    out[region] = GRAY
    return out


def agnostic_mask(image_shape_hw: tuple[int, ...], parse: np.ndarray,
                  pose25: np.ndarray) -> np.ndarray:
    """agnostic-mask (True = region to inpaint) = exactly the gray region of
    :func:`agnostic_image` (spec §1.8). Same errors as agnostic_image."""
    return _agnostic_region((int(image_shape_hw[0]), int(image_shape_hw[1])), parse, pose25)


def parse_agnostic(parse: np.ndarray, pose25: np.ndarray) -> np.ndarray:
    """image-parse-agnostic-v3.2 from a CIHP parse (HR-VITON get_parse_agnostic, spec §1.7).

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
    out = labels.astype(np.uint8, copy=True)
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
        out[(np.array(canvas) > 0) & (labels == label)] = 0
    out[np.isin(labels, _PARSE_AGNOSTIC_CLEAR)] = 0
    return out


def gt_cloth_warped_mask(parse: np.ndarray, labels: Iterable[int] = (5, 6, 7)) -> np.ndarray:
    """Worn-garment silhouette (StableVITON gt_cloth_warped_mask, spec §1.10): parse ∈ labels."""
    return np.isin(np.asarray(parse), tuple(labels))
