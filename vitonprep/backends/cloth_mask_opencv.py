"""Garment silhouette (``cloth-mask``) of an in-shop garment photo on a near-uniform light background, OpenCV only.

VITON-HD's own cloth masks were made with a learned background remover (preprocess_spec section 5); any method
that yields a filled garment silhouette is acceptable. This back-end is a classical one:

1. Background model: the border band of the image (``border_fraction`` of the shorter side) is fitted in CIE Lab
   with a robust per-channel quadratic surface in (x, y), so flat studio backgrounds, soft gradients and
   vignettes are all modelled; border pixels that belong to a garment touching the frame are rejected as
   outliers. The residual spread of the border pixels is the background noise level; a border that is not
   (near-)uniform raises ``ValueError``.
2. Evidence of garment = colour distance to the modelled background (CIE76 Delta E) above a noise-adaptive
   threshold, OR local texture (standard deviation of L in a 5x5 window) above a noise-adaptive threshold that
   also grows with the local colour contrast (so the JPEG ringing beside dark garments is not "texture"). The
   texture cue recovers white garments on white backgrounds, whose colour is within 1-3 Delta E of the backdrop
   but whose weave, folds and outline are not flat.
3. Morphological close, then the largest 8-connected component with its interior holes filled (filled outer
   contour; the inner back-neck panel and prints are part of the silhouette, as in the VITON-HD masks).
4. Boundary clean-up: within ``boundary_band`` px of the outline, pixels whose Delta E is below
   ``boundary_contrast`` x the local maximum Delta E are dropped -- this removes the JPEG ringing / anti-aliasing
   halo of dark garments and puts the edge near the 50 % transition, as a matting model does.
5. Morphological open, largest component with holes filled again, optional Gaussian smoothing of the contour.

Measured against the six official VITON-HD cloth masks in ``data/vitonhd-official``: IoU 0.987-0.996, mean 0.993
(the colour cue alone gives mean 0.993 too, but loses the white straps of a white top on the white backdrop).

Raises ``ValueError`` when no garment is found: empty or tiny mask, or a mask covering more than
``max_area_fraction`` of the image (no background).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

logger = logging.getLogger(__name__)

NAME = "cloth-mask-opencv"
APPROXIMATE = False

__all__ = ["NAME", "APPROXIMATE", "ClothMaskConfig", "cloth_mask"]


@dataclass(frozen=True)
class ClothMaskConfig:
    """Parameters of `cloth_mask`. Lengths in px are for a 768x1024 image and scale with the shorter side."""

    #: width of the border band used to model the background, as a fraction of the shorter image side
    border_fraction: float = 0.02
    #: minimum colour distance (CIE76 Delta E, L in 0..100) from the background that counts as garment
    min_delta_e: float = 2.5
    #: colour threshold = max(min_delta_e, delta_e_noise_factor x the 99th percentile of the border residual)
    delta_e_noise_factor: float = 1.5
    #: minimum local standard deviation of L (texture, outline) that counts as garment; 0 disables the cue
    min_texture: float = 0.35
    #: texture threshold = max(min_texture, texture_noise_factor x the border's 99.5th percentile texture)
    texture_noise_factor: float = 2.0
    #: window (px) of the local standard deviation
    texture_window: int = 5
    #: texture must also exceed this fraction of the maximum Delta E within texture_contrast_window px
    texture_contrast_ratio: float = 0.08
    texture_contrast_window: int = 15
    #: the border is "not a uniform background" if the median Delta E of its pixels to the fitted backdrop
    #: exceeds this (a garment may touch the frame, so only half of the border has to be backdrop)
    max_background_noise: float = 8.0
    #: kernel diameter (px at 768 px shorter side) of the closing that joins garment evidence
    close_px: int = 5
    #: kernel diameter (px) of the final opening that removes thin protrusions
    open_px: int = 5
    #: width (px) of the outline band in which low-contrast halo pixels are dropped; 0 disables the step
    boundary_band: int = 3
    #: a band pixel is kept if its Delta E >= boundary_contrast x the local maximum Delta E
    boundary_contrast: float = 0.5
    #: window (px) of that local maximum
    boundary_window: int = 7
    #: Gaussian sigma (px) of the optional contour smoothing; 0 = off
    smooth_sigma: float = 0.0
    #: masks smaller than this fraction of the image are "no garment found"
    min_area_fraction: float = 0.005
    #: masks larger than this fraction of the image mean there is no background
    max_area_fraction: float = 0.98


def cloth_mask(rgb: np.ndarray, config: ClothMaskConfig = ClothMaskConfig()) -> np.ndarray:
    """Garment silhouette (HxW bool, True = garment) of an in-shop garment photo ``rgb`` (HxWx3 uint8 RGB)."""
    rgb = _check_rgb(rgb)
    cfg = config
    h, w = rgb.shape[:2]
    unit = min(h, w) / 768.0  # pixel lengths of the config are for a 768-px shorter side

    lab = _lab(rgb)
    band = max(3, int(round(cfg.border_fraction * min(h, w))))
    bg = _fit_background(lab, band)
    delta_e = _distance(lab, bg)
    resid = _strips(delta_e, band)
    noise50 = float(np.percentile(resid, 50))
    if noise50 > cfg.max_background_noise:
        raise ValueError(
            f"no uniform background: half of the image border differs from a smooth backdrop by more than "
            f"Delta E {noise50:.1f} (> {cfg.max_background_noise}); cloth_mask needs an in-shop photo on a plain "
            f"backdrop")
    # noise level of the backdrop itself (border pixels that are not a garment touching the frame)
    bg_resid = resid[resid <= max(3.0, 4.0 * noise50 + 1.0)]
    t_colour = max(cfg.min_delta_e, cfg.delta_e_noise_factor * float(np.percentile(bg_resid, 99)))
    evidence = delta_e > t_colour

    if cfg.min_texture > 0:
        win = max(3, int(round(cfg.texture_window * unit)) | 1)
        tex = _local_std(lab[..., 0], win)
        # texture noise of the backdrop: border band minus the outer ring the window sees beyond the edge
        r = win // 2 + 1
        t_b = _strips(tex[r:-r, r:-r], band - r)
        d_b = _strips(delta_e[r:-r, r:-r], band - r)
        t_b = t_b[d_b <= t_colour]
        t_noise = float(np.percentile(t_b, 99.5)) if t_b.size else 0.0
        t_tex = max(cfg.min_texture, cfg.texture_noise_factor * t_noise)
        # JPEG ringing next to a high-contrast edge is "texture" too; scale the threshold with the local contrast
        cwin = max(3, int(round(cfg.texture_contrast_window * unit)) | 1)
        contrast = cv2.dilate(delta_e, cv2.getStructuringElement(cv2.MORPH_RECT, (cwin, cwin)))
        evidence |= tex > cv2.max(contrast * cfg.texture_contrast_ratio, t_tex)
    else:
        t_tex = float("nan")
    logger.debug("cloth_mask: colour threshold %.2f, texture threshold %.2f, border noise %.2f",
                 t_colour, t_tex, noise50)

    m = evidence.astype(np.uint8)
    m = _morph(m, cv2.MORPH_CLOSE, cfg.close_px * unit)
    m = _largest_filled(m)
    if cfg.boundary_band > 0 and m.any():
        depth = cv2.distanceTransform(m.astype(np.uint8), cv2.DIST_L2, 3)
        win = max(3, int(round(cfg.boundary_window * unit)) | 1)
        local_max = cv2.dilate(delta_e, cv2.getStructuringElement(cv2.MORPH_RECT, (win, win)))
        halo = (depth <= cfg.boundary_band * unit) & (delta_e < cfg.boundary_contrast * local_max)
        m &= ~halo
    m = _morph(m.astype(np.uint8), cv2.MORPH_OPEN, cfg.open_px * unit)
    m = _largest_filled(m)
    if cfg.smooth_sigma > 0 and m.any():
        s = cfg.smooth_sigma * unit
        m = _largest_filled(cv2.GaussianBlur(m.astype(np.float32), (0, 0), s) >= 0.5)

    frac = float(m.mean())
    if frac < cfg.min_area_fraction:
        raise ValueError(f"no garment found: the mask covers {frac:.2%} of the image "
                         f"(< {cfg.min_area_fraction:.1%}); is the garment as light as the background?")
    if frac > cfg.max_area_fraction:
        raise ValueError(f"no garment found: the mask covers {frac:.2%} of the image "
                         f"(> {cfg.max_area_fraction:.0%}), i.e. there is no background")
    return m


# ---------------------------------------------------------------------------------------------------------------


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must be an HxWx3 array, got shape {rgb.shape}")
    if rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be uint8, got {rgb.dtype}")
    if min(rgb.shape[:2]) < 16:
        raise ValueError(f"image too small for a cloth mask: {rgb.shape[1]}x{rgb.shape[0]}")
    return np.ascontiguousarray(rgb)


_LAB_SCALE = np.array([[100.0 / 255.0, 0, 0, 0], [0, 1, 0, -128.0], [0, 0, 1, -128.0]], np.float32)


def _lab(rgb: np.ndarray) -> np.ndarray:
    """CIE Lab as float32 with L in 0..100 and a, b centred on 0."""
    return cv2.transform(cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32), _LAB_SCALE)


def _distance(lab: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Per-pixel CIE76 Delta E between two HxWx3 float32 Lab images."""
    d = cv2.subtract(lab, ref)
    sq = cv2.transform(cv2.multiply(d, d), np.ones((1, 3), np.float32))
    return cv2.sqrt(sq)


def _strips(a: np.ndarray, band: int) -> np.ndarray:
    """Values of the border band (top, bottom, left, right; no pixel twice), flattened over the first two axes."""
    band = max(1, band)
    parts = (a[:band], a[-band:], a[band:-band, :band], a[band:-band, -band:])
    return np.concatenate([p.reshape((-1,) + a.shape[2:]) for p in parts])


def _strip_coords(h: int, w: int, band: int) -> tuple[np.ndarray, np.ndarray]:
    """(y, x) coordinates of the pixels returned by `_strips` for an HxW image, in the same order."""
    band = max(1, band)
    mid = np.arange(band, h - band, dtype=np.float64)
    cols = np.arange(w, dtype=np.float64)
    parts = [
        (np.repeat(np.arange(band, dtype=np.float64), w), np.tile(cols, band)),
        (np.repeat(np.arange(h - band, h, dtype=np.float64), w), np.tile(cols, band)),
        (np.repeat(mid, band), np.tile(np.arange(band, dtype=np.float64), mid.size)),
        (np.repeat(mid, band), np.tile(np.arange(w - band, w, dtype=np.float64), mid.size)),
    ]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _design(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    return np.stack([np.ones_like(xs), xs, ys, xs * xs, xs * ys, ys * ys], axis=-1)


def _fit_background(lab: np.ndarray, band: int) -> np.ndarray:
    """Robust quadratic Lab surface (HxWx3) fitted on the border band: the modelled backdrop."""
    h, w = lab.shape[:2]
    # the backdrop is smooth: fit on a 1/4-scale copy (area-averaged, which also lowers the noise)
    f = 4 if min(h, w) >= 64 else 1
    small = cv2.resize(lab, (max(2, w // f), max(2, h // f)), interpolation=cv2.INTER_AREA) if f > 1 else lab
    sh, sw = small.shape[:2]
    sb = max(1, band // f)
    vals = _strips(small, sb).astype(np.float64)
    ys, xs = _strip_coords(sh, sw, sb)
    nx = (xs + 0.5) / sw - 0.5
    ny = (ys + 0.5) / sh - 0.5
    a = _design(nx, ny)
    # start from the median colour: border pixels far from it are a garment touching the frame
    resid = np.sqrt(((vals - np.median(vals, axis=0)) ** 2).sum(axis=1))
    inl = resid <= max(10.0, 3.0 * float(np.median(resid)))
    coef = np.zeros((6, 3))
    coef[0] = np.median(vals, axis=0)
    for _ in range(3):
        if inl.sum() < 24:
            break
        coef, *_ = np.linalg.lstsq(a[inl], vals[inl], rcond=None)
        resid = np.sqrt(((vals - a @ coef) ** 2).sum(axis=1))
        inl = resid <= max(3.0, 4.0 * 1.4826 * float(np.median(resid[inl])))
    # evaluate on a coarse grid of pixel centres and upsample (the surface is smooth)
    gh, gw = max(2, h // 8), max(2, w // 8)
    gy, gx = np.meshgrid((np.arange(gh) + 0.5) / gh - 0.5, (np.arange(gw) + 0.5) / gw - 0.5, indexing="ij")
    grid = (_design(gx.ravel(), gy.ravel()) @ coef).reshape(gh, gw, 3).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_LINEAR)


def _local_std(lum: np.ndarray, win: int) -> np.ndarray:
    """Standard deviation of L in a win x win box around each pixel."""
    mean = cv2.boxFilter(lum, cv2.CV_32F, (win, win))
    mean_sq = cv2.sqrBoxFilter(lum, cv2.CV_32F, (win, win))
    return cv2.sqrt(cv2.max(cv2.subtract(mean_sq, cv2.multiply(mean, mean)), 0.0))


def _morph(m: np.ndarray, op: int, diameter: float) -> np.ndarray:
    d = int(round(diameter))
    if d < 2:
        return m
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (d, d))
    return cv2.morphologyEx(m, op, k)


def _largest_filled(m: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of ``m`` with its interior holes filled."""
    contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = np.zeros(m.shape, np.uint8)
    if contours:
        areas = [cv2.contourArea(c) + 0.5 * cv2.arcLength(c, True) + 1.0 for c in contours]
        cv2.drawContours(out, contours, int(np.argmax(areas)), 1, thickness=cv2.FILLED)
    return out.astype(bool)
