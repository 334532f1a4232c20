"""Training augmentation as the StableVITON paper intends, with the official code's bugs fixed.

StableVITON's README trains with ``--transform_size shiftscale3 hflip``, a name its ``dataset.py`` does not know (a
silent no-op), and with ``shiftscale`` that file keeps the un-shifted ``gt_cloth_warped_mask``. Here:

* **Geometric, joint:** one horizontal-flip decision for the person group *and* the cloth group (as officially);
  shift/scale with one parameter draw for the person group (image, agn, agn_mask, image_densepose,
  gt_cloth_warped_mask) and an independent draw for the cloth group (cloth, cloth_mask), constant-zero borders.
  Masks are warped with nearest-neighbour interpolation so they stay binary; the agnostic keep-region grows where the
  shift exposes border (the border is "nothing to generate" only if it is black in the target too, which it is).
* **DensePose on flip:** the official code mirrors the image without swapping left/right part colours, so a flipped
  left arm is still coloured "left arm" on the right side. We swap the colours (``densepose_flip: swap``, default;
  ``mirror`` reproduces the official behaviour).
* **Colour, images only:** HSV shift and brightness/contrast with shared parameters on image, agn and cloth, then the
  agnostic hole is re-greyed to 128 (official order).

All randomness comes from a ``numpy.random.Generator`` the caller seeds per sample, so a stream of samples is a pure
function of (seed, epoch, rank, worker, sample index) — what makes kill-and-resume exact.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Literal, Mapping

import cv2
import numpy as np

from vitonprep import PARULA_RGB

PERSON_IMAGES = ("image", "agn", "image_densepose")
PERSON_MASKS = ("agn_mask", "gt_cloth_warped_mask")
CLOTH_IMAGES = ("cloth",)
CLOTH_MASKS = ("cloth_mask",)
COLOUR_IMAGES = ("image", "agn", "cloth")
AGNOSTIC_GREY = 128

#: DensePose part-label symmetry (index → its mirror part): hands 3↔4, feet 5↔6, legs, arms, head sides.
DENSEPOSE_MIRROR = np.array([0, 1, 2, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15, 18, 17, 20, 19, 22, 21, 24, 23],
                            dtype=np.intp)


@dataclass(frozen=True)
class ShiftScale:
    """``A.ShiftScaleRotate(shift_limit, scale_limit, rotate_limit=0, BORDER_CONSTANT 0, p)`` per group."""

    p: float = 0.5
    shift_limit: float = 0.2      # fraction of width/height, uniform in [-limit, limit]
    scale_limit: float = 0.2      # scale = 1 + uniform(-limit, limit)


@dataclass(frozen=True)
class AugmentConfig:
    """``enabled: false`` gives the test-time path (resize only). Defaults = the paper's recipe, bugs fixed."""

    enabled: bool = True
    hflip_p: float = 0.5
    shiftscale: bool = True                      # the official release effectively runs with False (module doc)
    person_shift: ShiftScale = ShiftScale()
    cloth_shift: ShiftScale = ShiftScale()
    densepose_flip: Literal["swap", "mirror"] = "swap"
    hsv_p: float = 0.5
    hsv_limits: tuple[int, int, int] = (5, 5, 5)           # hue (OpenCV 0..179 units), saturation, value
    brightness_contrast_p: float = 0.5
    brightness_limit: tuple[float, float] = (-0.1, 0.02)    # × 255 (albumentations brightness_by_max)
    contrast_limit: tuple[float, float] = (-0.3, 0.3)

    def __post_init__(self) -> None:
        if self.densepose_flip not in ("swap", "mirror"):
            raise ValueError(f"densepose_flip must be 'swap' or 'mirror', got {self.densepose_flip!r}")
        for name in ("hflip_p", "hsv_p", "brightness_contrast_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability, got {getattr(self, name)}")


_LUT_BITS = 6  # colour quantisation of the nearest-part lookup table (64³ entries, 256 KiB)


@functools.lru_cache(maxsize=1)
def _nearest_part_lut() -> np.ndarray:
    """uint8 [64,64,64]: nearest DensePose palette index (black = 0) of each quantised RGB colour."""
    step = 1 << (8 - _LUT_BITS)
    centres = np.arange(step // 2, 256, step, dtype=np.float32)
    grid = np.stack(np.meshgrid(centres, centres, centres, indexing="ij"), axis=-1).reshape(-1, 3)
    palette = PARULA_RGB.astype(np.float32).copy()
    palette[0] = 0.0
    dist = ((grid[:, None, :] - palette[None, :, :]) ** 2).sum(-1)
    return dist.argmin(1).astype(np.uint8).reshape((1 << _LUT_BITS,) * 3)


def swap_densepose_sides(rgb: np.ndarray) -> np.ndarray:
    """Recolour every DensePose part as its mirror part, keeping each pixel's offset from the palette colour (so JPEG
    noise and resize blending survive and the image statistics do not change).

    Parts are found by a quantised nearest-colour table (the exact search, ``parts_from_densepose_image``, costs
    ~10× more); it agrees with the exact search on 99.9 % of the pixels of the bundled DensePose JPEGs, the rest
    being blended boundary pixels."""
    q = rgb >> (8 - _LUT_BITS)
    parts = _nearest_part_lut()[q[..., 0], q[..., 1], q[..., 2]]
    palette = PARULA_RGB.astype(np.int16).copy()
    palette[0] = 0
    delta = palette[DENSEPOSE_MIRROR] - palette          # per part: colour change to its mirror
    out = rgb.astype(np.int16) + delta[parts]
    return np.clip(out, 0, 255).astype(np.uint8)


def _hflip(array: np.ndarray) -> np.ndarray:
    if array.dtype == bool:  # cv2 has no bool type; flip the same bytes as uint8
        return cv2.flip(np.ascontiguousarray(array).view(np.uint8), 1).view(bool)
    return cv2.flip(np.ascontiguousarray(array), 1)


def _affine(rng: np.random.Generator, cfg: ShiftScale, height: int, width: int) -> np.ndarray | None:
    if rng.random() >= cfg.p:
        return None
    scale = 1.0 + rng.uniform(-cfg.scale_limit, cfg.scale_limit)
    dx = rng.uniform(-cfg.shift_limit, cfg.shift_limit) * width
    dy = rng.uniform(-cfg.shift_limit, cfg.shift_limit) * height
    matrix = cv2.getRotationMatrix2D((width / 2.0, height / 2.0), 0.0, scale)
    matrix[:, 2] += (dx, dy)
    return matrix


def _warp(array: np.ndarray, matrix: np.ndarray, is_mask: bool) -> np.ndarray:
    h, w = array.shape[:2]
    if is_mask:
        warped = cv2.warpAffine(array.astype(np.uint8), matrix, (w, h), flags=cv2.INTER_NEAREST,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return warped.astype(bool)
    return cv2.warpAffine(array, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=(0, 0, 0))


def _apply_group(sample: dict[str, Any], images: tuple[str, ...], masks: tuple[str, ...],
                 matrix: np.ndarray | None) -> None:
    if matrix is None:
        return
    for name in images:
        if name in sample:
            sample[name] = _warp(sample[name], matrix, is_mask=False)
    for name in masks:
        if name in sample:
            sample[name] = _warp(sample[name], matrix, is_mask=True)


def _hsv_shift(rgbs: list[np.ndarray], shifts: tuple[int, int, int]) -> list[np.ndarray]:
    dh, ds, dv = shifts
    out = []
    for rgb in rgbs:
        hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
        h = ((hsv[..., 0].astype(np.int16) + dh) % 180).astype(np.uint8)   # OpenCV hue is 0..179 and wraps
        s = np.clip(hsv[..., 1].astype(np.int16) + ds, 0, 255).astype(np.uint8)
        v = np.clip(hsv[..., 2].astype(np.int16) + dv, 0, 255).astype(np.uint8)
        out.append(cv2.cvtColor(np.dstack([h, s, v]), cv2.COLOR_HSV2RGB))
    return out


def _brightness_contrast(rgbs: list[np.ndarray], alpha: float, beta: float) -> list[np.ndarray]:
    lut = np.clip(np.arange(256, dtype=np.float32) * alpha + beta * 255.0, 0, 255).astype(np.uint8)
    return [cv2.LUT(rgb, lut) for rgb in rgbs]


def augment_sample(sample: Mapping[str, Any], cfg: AugmentConfig, rng: np.random.Generator) -> dict[str, Any]:
    """Augment one resized, decoded shard sample (HWC uint8 images, HW bool masks; ``agn_mask`` True = inpaint)."""
    out = dict(sample)
    if not cfg.enabled:
        return out
    h, w = out["image"].shape[:2]
    if rng.random() < cfg.hflip_p:
        for name in PERSON_IMAGES + PERSON_MASKS + CLOTH_IMAGES + CLOTH_MASKS:
            if name in out:
                out[name] = _hflip(out[name])
        if cfg.densepose_flip == "swap" and "image_densepose" in out:
            out["image_densepose"] = swap_densepose_sides(out["image_densepose"])
    if cfg.shiftscale:
        # Exposed borders are zero everywhere: black in the images, False ("keep", not "to generate") in agn_mask.
        _apply_group(out, PERSON_IMAGES, PERSON_MASKS, _affine(rng, cfg.person_shift, h, w))
        _apply_group(out, CLOTH_IMAGES, CLOTH_MASKS, _affine(rng, cfg.cloth_shift, h, w))
    colour_changed = False
    present = [name for name in COLOUR_IMAGES if name in out]
    if rng.random() < cfg.hsv_p:
        shifts = tuple(int(rng.integers(-lim, lim + 1)) for lim in cfg.hsv_limits)
        for name, img in zip(present, _hsv_shift([out[n] for n in present], shifts), strict=True):
            out[name] = img
        colour_changed = True
    if rng.random() < cfg.brightness_contrast_p:
        alpha = 1.0 + rng.uniform(*cfg.contrast_limit)
        beta = rng.uniform(*cfg.brightness_limit)
        for name, img in zip(present, _brightness_contrast([out[n] for n in present], alpha, beta), strict=True):
            out[name] = img
        colour_changed = True
    if colour_changed and "agn" in out and "agn_mask" in out:
        agn = out["agn"].copy()
        agn[out["agn_mask"]] = AGNOSTIC_GREY          # official: re-grey the hole after colour augmentation
        out["agn"] = agn
    return out
