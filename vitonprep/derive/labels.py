"""Human-parsing label sets (CIHP, ATR, LIP), the VITON-HD palette and label remaps.

Sources (docs/architecture.md, "Labels"): CIHP ids, HR-VITON 13-class grouping, VITON-HD palette, and
the ATR / LIP / CIHP id table with IDM-VTON's neck rule.
"""

from __future__ import annotations

import logging
from typing import Sequence

import cv2
import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

__all__ = [
    "CIHP_LABELS",
    "ATR_LABELS",
    "LIP_LABELS",
    "CIHP_PALETTE",
    "HRVITON_GROUPS",
    "to_hrviton_groups",
    "lip_to_cihp",
    "atr_to_cihp",
    "cihp_to_atr",
    "synthesise_neck",
    "labels_to_palette_image",
    "palette_image_to_labels",
]

CIHP_LABELS: tuple[str, ...] = (
    "Background", "Hat", "Hair", "Glove", "Sunglasses", "Upper-clothes", "Dress",
    "Coat", "Socks", "Pants", "Torso-skin", "Scarf", "Skirt", "Face", "Left-arm",
    "Right-arm", "Left-leg", "Right-leg", "Left-shoe", "Right-shoe",
)

ATR_LABELS: tuple[str, ...] = (
    "Background", "Hat", "Hair", "Sunglasses", "Upper-clothes", "Skirt", "Pants",
    "Dress", "Belt", "Left-shoe", "Right-shoe", "Face", "Left-leg", "Right-leg",
    "Left-arm", "Right-arm", "Bag", "Scarf",
)

LIP_LABELS: tuple[str, ...] = (
    "Background", "Hat", "Hair", "Glove", "Sunglasses", "Upper-clothes", "Dress",
    "Coat", "Socks", "Pants", "Jumpsuits", "Scarf", "Skirt", "Face", "Left-arm",
    "Right-arm", "Left-leg", "Right-leg", "Left-shoe", "Right-shoe",
)

# VITON-HD variant of the CIHP_PGN colours (255->254, 170->169, 221->220).
_CIHP_COLOURS: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0), (128, 0, 0), (254, 0, 0), (0, 85, 0), (169, 0, 51),
    (254, 85, 0), (0, 0, 85), (0, 119, 220), (85, 85, 0), (0, 85, 85),
    (85, 51, 0), (52, 86, 128), (0, 128, 0), (0, 0, 254), (51, 169, 220),
    (0, 254, 254), (85, 254, 169), (169, 254, 85), (254, 254, 0), (254, 169, 0),
)

#: 768-entry PIL palette: CIHP colours for 0..19, grey ramp (i, i, i) for 20..255.
CIHP_PALETTE: list[int] = [c for rgb in _CIHP_COLOURS for c in rgb] + [
    v for i in range(len(_CIHP_COLOURS), 256) for v in (i, i, i)
]

#: CIHP id -> HR-VITON / VITON-HD 13-class group (cp_dataset.py ``labels``).
HRVITON_GROUPS: dict[int, int] = {
    0: 0, 10: 0,            # background, neck
    1: 1, 2: 1,             # hair (hat, hair)
    4: 2, 13: 2,            # face (sunglasses, face)
    5: 3, 6: 3, 7: 3,       # upper (upper-clothes, dress, coat)
    9: 4, 12: 4,            # bottom (pants, skirt)
    14: 5,                  # left arm
    15: 6,                  # right arm
    16: 7,                  # left leg
    17: 8,                  # right leg
    18: 9,                  # left shoe
    19: 10,                 # right shoe
    8: 11,                  # socks
    3: 12, 11: 12,          # noise (glove, scarf)
}


def _lut(mapping: dict[int, int], size: int = 256, default: int | None = None) -> np.ndarray:
    lut = np.arange(size, dtype=np.uint8) if default is None else np.full(size, default, np.uint8)
    for k, v in mapping.items():
        lut[k] = v
    return lut


def _apply(lut: np.ndarray, labels: np.ndarray) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.dtype != np.uint8:
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise ValueError("label map values must lie in 0..255")
        arr = arr.astype(np.uint8)
    return lut[arr]


_HRVITON_LUT = _lut(HRVITON_GROUPS, default=0)


def to_hrviton_groups(labels: np.ndarray) -> np.ndarray:
    """Map a CIHP label map to HR-VITON's 13 groups (cp_dataset.py ``labels``).

    Ids outside 0..19 map to group 0.
    """
    return _apply(_HRVITON_LUT, labels)


# LIP -> CIHP.  LIP and CIHP share ids except 10.  Lossy choice: LIP 10 "Jumpsuits"
# becomes CIHP 6 "Dress" (a one-piece garment covering the torso; HR-VITON puts Dress in
# the "upper" group, so the jumpsuit is erased by the agnostic like a dress).  LIP has no
# neck class: CIHP 10 (torso-skin) must be synthesised separately (see synthesise_neck).
_LIP_TO_CIHP_LUT = _lut({10: 6})

# ATR -> CIHP (full table).  Lossy choices:
#   8 Belt  -> 9 Pants: a belt sits on the waistband; VITON-HD keeps the lower body, so it
#              is better preserved with the bottom group than erased as upper clothes.
#   16 Bag  -> 0 Background: CIHP has no bag class.
#   17 Scarf -> 11 Scarf.
#   11 Face -> 13 Face: ATR's face class also covers the neck; CIHP 10 is lost unless
#              synthesised (synthesise_neck).
_ATR_TO_CIHP_LUT = _lut(
    {0: 0, 1: 1, 2: 2, 3: 4, 4: 5, 5: 12, 6: 9, 7: 6, 8: 9, 9: 18, 10: 19, 11: 13,
     12: 16, 13: 17, 14: 14, 15: 15, 16: 0, 17: 11},
    default=0,
)

# CIHP -> ATR (for DressCode label_maps / IDM parses).  Lossy choices:
#   3 Glove  -> nearest of ATR 14/15 arm (resolved spatially in cihp_to_atr; 0 if no arm).
#   8 Socks  -> nearest of ATR 12/13 leg (resolved spatially; 0 if no leg).
#   7 Coat   -> 4 Upper-clothes (ATR has no coat; DressCode's upper_body includes coats).
#   10 Torso-skin (neck) -> 11 Face by default: SCHP-ATR labels the neck as part of its
#              face/head class (that is what IDM's "ATR face and not LIP face" neck rule
#              relies on).  Pass neck_label=0 for background, 18 for IDM's neck.
_CIHP_TO_ATR_LUT = _lut(
    {0: 0, 1: 1, 2: 2, 3: 0, 4: 3, 5: 4, 6: 7, 7: 4, 8: 0, 9: 6, 10: 11, 11: 17,
     12: 5, 13: 11, 14: 14, 15: 15, 16: 12, 17: 13, 18: 9, 19: 10},
    default=0,
)


def lip_to_cihp(lip: np.ndarray) -> np.ndarray:
    """LIP (SCHP) label map -> CIHP ids; only LIP 10 Jumpsuits changes (-> 6 Dress)."""
    return _apply(_LIP_TO_CIHP_LUT, lip)


def atr_to_cihp(atr: np.ndarray) -> np.ndarray:
    """ATR (SCHP, 18 classes) label map -> CIHP ids (table above; lossy choices noted beside it)."""
    return _apply(_ATR_TO_CIHP_LUT, atr)


def _assign_nearest(out: np.ndarray, where: np.ndarray, src: np.ndarray,
                    sides: Sequence[tuple[int, int]]) -> None:
    """Give every ``where`` pixel the target id of the nearest ``src`` side label."""
    if not where.any():
        return
    dists = []
    for src_id, _ in sides:
        present = src == src_id
        if not present.any():
            dists.append(np.full(src.shape, np.inf, np.float32))
            continue
        dists.append(cv2.distanceTransform((~present).astype(np.uint8), cv2.DIST_L2, 5))
    d = np.stack(dists)
    best = np.argmin(d, axis=0)
    finite = np.isfinite(d.min(axis=0))
    targets = np.array([t for _, t in sides], np.uint8)
    sel = where & finite
    out[sel] = targets[best[sel]]
    out[where & ~finite] = 0


def cihp_to_atr(cihp: np.ndarray, neck_label: int = 11) -> np.ndarray:
    """CIHP label map -> ATR ids (DressCode ``label_maps``).

    Gloves/socks get the side (left/right arm or leg) of the nearest CIHP arm/leg pixel;
    the neck (CIHP 10) becomes ``neck_label`` (11 = ATR face, as SCHP-ATR labels it).
    """
    src = np.asarray(cihp)
    out = _apply(_CIHP_TO_ATR_LUT, src)
    out[src == 10] = neck_label
    _assign_nearest(out, src == 3, src, ((14, 14), (15, 15)))
    _assign_nearest(out, src == 8, src, ((16, 12), (17, 13)))
    return out


def synthesise_neck(cihp: np.ndarray, atr_face_mask: np.ndarray,
                    lip_face_mask: np.ndarray) -> np.ndarray:
    """Set CIHP 10 (neck) where ATR says face but LIP does not (IDM-VTON rule).

    Hair/hat/sunglasses pixels are never overwritten.
    """
    out = np.array(cihp, dtype=np.uint8, copy=True)
    neck = np.asarray(atr_face_mask, bool) & ~np.asarray(lip_face_mask, bool)
    neck &= ~np.isin(out, (1, 2, 4))
    out[neck] = 10
    return out


def labels_to_palette_image(labels: np.ndarray,
                            palette: Sequence[int] = CIHP_PALETTE) -> Image.Image:
    """HxW label map -> PIL mode "P" image with ``palette`` (VITON-HD format)."""
    arr = np.asarray(labels)
    if arr.ndim != 2:
        raise ValueError(f"label map must be HxW, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise ValueError("label map values must lie in 0..255")
        arr = arr.astype(np.uint8)
    arr = np.ascontiguousarray(arr)
    img = Image.frombytes("P", (arr.shape[1], arr.shape[0]), arr.tobytes())
    img.putpalette(list(palette))
    return img


def palette_image_to_labels(img: Image.Image) -> np.ndarray:
    """Read label indices from a mode "P" or "L" image (no colour lookup)."""
    if img.mode not in ("P", "L"):
        raise ValueError(
            f"expected a palette ('P') or grey ('L') label image, got mode {img.mode!r}"
        )
    return np.array(img, dtype=np.uint8)
