"""Garment silhouette (``cloth-mask``) of an in-shop garment photo on a near-uniform light background, OpenCV only.

VITON-HD's own cloth masks were made with a learned background remover; any method
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
5. Morphological open. On a clean backdrop, low-contrast pieces join the mask (`_low_contrast_pieces`): a white
   garment on a white backdrop differs from it by only 1-2.5 Delta E, under the colour threshold, and a smooth
   tee has no texture there; pixels above a low threshold whose L still varies, in pieces at least 13 px wide and
   0.25 % of the image, are garment (the halo and soft shadow around a garment are as faint but thin; a pasted
   backdrop patch is flat), and gaps up to 25 px between them and the mask close where Delta E exceeds the low
   threshold.
6. Largest component with holes filled again, optional Gaussian smoothing of the contour.

A photo padded onto the canvas (``fit: pad``) is masked on the photo alone (`_photo_rect`): the pad bands hold
one flat colour, and a backdrop model fitted on them missed a backdrop that greys towards the photo's own edge.

Measured against the six official VITON-HD cloth masks in ``data/vitonhd-official``: IoU 0.987-0.996, mean 0.993
(the colour cue alone gives mean 0.993 too, but loses the white straps of a white top on the white backdrop; the
low-contrast step leaves these six masks unchanged). White tees on white (docs/masks.md): 0.247 -> 0.389 of the
image for 12562_00, 0.258 -> 0.297 for 07764_00 of the graded set, IoU 0.951 -> 0.985 for a bundled tee composited
on a backdrop of its own colour.

Speed (about 0.5x the time of a float-Lab implementation): Delta E is computed in row bands from the 8-bit Lab
image and the backdrop surface converted to 8-bit Lab units (no full float Lab copy), the backdrop fit reads only the
border strips, texture uses box filters on the 8-bit L plane, the texture-contrast dilation runs on Delta E
quantised to 0.5, and the halo step works on the mask's bounding box (erosion by the 3x3-chamfer ball instead of
a distance transform, which is equivalent). Against the float-Lab computation this moves at most a few dozen pixels
per garment (rounding at the thresholds); the IoUs above are unchanged to 1e-5.

Raises `InputError` when no garment is found: empty or tiny mask, or a mask covering more than
``max_area_fraction`` of the image (no background), or no plain backdrop. The module is one algorithm with its
steps (about 500 lines); `OpenCVClothMask` is its back-end class.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import cv2
import numpy as np

from vitonprep.backends.protocols import Backend
from vitonprep.errors import InputError

logger = logging.getLogger(__name__)

NAME = "cloth-mask-opencv"
APPROXIMATE = False

__all__ = ["NAME", "APPROXIMATE", "ClothMaskConfig", "OpenCVClothMask", "cloth_mask"]


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
    #: low-contrast pieces (white on white): pixels above this Delta E (and the backdrop's noise threshold) that
    #: also vary (texture above low_texture in a 10-px window) join the mask when they form a piece at least
    #: low_open_px wide and low_min_area_fraction of the image; 0 disables the step
    low_delta_e: float = 1.0
    low_texture: float = 0.1
    low_open_px: int = 13
    low_min_area_fraction: float = 0.0025
    #: after pieces were added, gaps up to low_close_px wide between them and the mask close where Delta E
    #: exceeds the low threshold (the smooth chest of a white tee between two varied pieces)
    low_close_px: int = 25
    #: Gaussian sigma (px) of the optional contour smoothing; 0 = off
    smooth_sigma: float = 0.0
    #: masks smaller than this fraction of the image are "no garment found"
    min_area_fraction: float = 0.005
    #: masks larger than this fraction of the image mean there is no background
    max_area_fraction: float = 0.98


def cloth_mask(rgb: np.ndarray, config: ClothMaskConfig = ClothMaskConfig()) -> np.ndarray:
    """Garment silhouette (HxW bool, True = garment) of an in-shop garment photo ``rgb`` (HxWx3 uint8 RGB).

    A photo padded onto the canvas (``fit: pad``, `vitonprep.photos.fit_to_canvas`: two opposite bands of one
    colour, the photo's median border colour, of equal width +-1 px) is masked on the photo alone and the bands
    are background: fitted on the canvas border, the backdrop model saw only the flat bands there, and a backdrop
    that darkens towards the photo's own edge (the grey ground under a hem) became garment.
    """
    rgb = _check_rgb(rgb)
    h, w = rgb.shape[:2]
    y0, y1, x0, x1 = _photo_rect(rgb)
    if (y0, y1, x0, x1) == (0, h, 0, w):
        return _photo_mask(rgb, config)
    out = np.zeros((h, w), bool)
    out[y0:y1, x0:x1] = _photo_mask(np.ascontiguousarray(rgb[y0:y1, x0:x1]), config)
    return out


def _photo_rect(rgb: np.ndarray, max_same: float = 0.9) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) of the photo inside the pad bands `fit_to_canvas` adds; the whole image when there are
    none. Pad bands: runs of rows (or columns) at two opposite edges equal to the corner's colour in every pixel,
    of equal length +-1 px and at least 2 px, where both lines next to the runs differ from that colour in more
    than ``1 - max_same`` of their pixels (the photo's own edge). Exact equality: a clean backdrop's edge comes
    within 1-2 levels of the pad colour (the photo's median border), and a JPEG of the canvas keeps the flat pad
    blocks exact. A photo whose backdrop is one flat colour (VITON-HD's shop photos: equal runs whenever the
    garment is centred) ends its runs at the garment, on lines still >= 92 % backdrop: it is left whole (its
    backdrop is the pad colour, so the canvas border models it anyway)."""
    h, w = rgb.shape[:2]
    corner = rgb[0, 0]
    whole = (0, h, 0, w)
    if not ((rgb[0, -1] == corner).all() and (rgb[-1, 0] == corner).all() and (rgb[-1, -1] == corner).all()):
        return whole  # bands on two opposite sides cover all four corners
    # per row and per column: does any pixel differ from the corner (one pass, 8-bit maxima)
    diff = cv2.absdiff(rgb, (int(corner[0]), int(corner[1]), int(corner[2]), 0)).reshape(h, w * 3)
    row_off = diff.max(axis=1) > 0  # numpy's maxima: 1/20 of cv2.reduce's time here
    col_off = diff.max(axis=0).reshape(w, 3).max(axis=1) > 0

    def run(off: np.ndarray) -> int:
        return int(np.argmax(off)) if off.any() else off.size

    def photo_edge(line: np.ndarray) -> bool:
        return float((line == corner).all(axis=1).mean()) <= max_same

    top, bottom, left, right = run(row_off), run(row_off[::-1]), run(col_off), run(col_off[::-1])
    # the photo fills the other axis: a colour running round all four sides is a rim of the photo, not a pad
    if (min(top, bottom) >= 2 and abs(top - bottom) <= 1 and top + bottom < h // 2 and min(left, right) == 0
            and photo_edge(rgb[top]) and photo_edge(rgb[h - 1 - bottom])):
        return top, h - bottom, 0, w
    if (min(left, right) >= 2 and abs(left - right) <= 1 and left + right < w // 2 and min(top, bottom) == 0
            and photo_edge(rgb[:, left]) and photo_edge(rgb[:, w - 1 - right])):
        return 0, h, left, w - right
    return whole


def _photo_mask(rgb: np.ndarray, cfg: ClothMaskConfig) -> np.ndarray:
    """`cloth_mask` of a photo without pad bands."""
    h, w = rgb.shape[:2]
    unit = min(h, w) / 768.0  # pixel lengths of the config are for a 768-px shorter side

    # 8-bit Lab; the float Lab image (_lab) is never built: Lab = _LAB_GAIN * lab8 + _LAB_OFFSET per channel
    lab8 = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
    band = max(3, int(round(cfg.border_fraction * min(h, w))))
    delta_e = _delta_e_lab8(lab8, _fit_surface(*_border_samples_lab8(lab8, band)))
    resid = _strips(delta_e, band)
    noise50 = float(np.percentile(resid, 50))
    if noise50 > cfg.max_background_noise:
        raise InputError(
            f"no uniform background: half of the image border differs from a smooth backdrop by more than "
            f"Delta E {noise50:.1f} (> {cfg.max_background_noise}); cloth_mask needs an in-shop photo on a plain "
            f"backdrop")
    # noise level of the backdrop itself (border pixels that are not a garment touching the frame)
    bg_resid = resid[resid <= max(3.0, 4.0 * noise50 + 1.0)]
    noise99 = float(np.percentile(bg_resid, 99))
    t_colour = max(cfg.min_delta_e, cfg.delta_e_noise_factor * noise99)

    if cfg.min_texture > 0:
        win = max(3, int(round(cfg.texture_window * unit)) | 1)
        # local variance of L in 8-bit L units (L = _L_GAIN x L8); texture = its square root
        var8 = _local_var_u8(cv2.extractChannel(lab8, 0), win)
        # texture noise of the backdrop: border band minus the outer ring the window sees beyond the edge
        r = win // 2 + 1
        t_b = np.sqrt(np.maximum(_strips(var8[r:-r, r:-r], band - r), 0.0)) * _L_GAIN
        d_b = _strips(delta_e[r:-r, r:-r], band - r)
        t_b = t_b[d_b <= t_colour]
        t_noise = float(np.percentile(t_b, 99.5)) if t_b.size else 0.0
        t_tex = max(cfg.min_texture, cfg.texture_noise_factor * t_noise)
        # JPEG ringing next to a high-contrast edge is "texture" too; scale the threshold with the local contrast
        # (local maximum of Delta E taken on Delta E quantised to 0.5 units: an 8-bit dilation)
        cwin = max(3, int(round(cfg.texture_contrast_window * unit)) | 1)
        contrast = cv2.dilate(cv2.convertScaleAbs(delta_e, alpha=_CONTRAST_Q),
                              cv2.getStructuringElement(cv2.MORPH_RECT, (cwin, cwin)))
        # evidence = colour | texture > max(contrast x ratio, t_tex), the texture test on squares (both >= 0)
        ratio2 = (np.arange(256, dtype=np.float32)
                  * np.float32(cfg.texture_contrast_ratio / (_L_GAIN * _CONTRAST_Q))) ** 2
        thr2_of_contrast = np.maximum(ratio2, np.float32((t_tex / _L_GAIN) ** 2))
        evidence = np.empty((h, w), bool)
        for y in range(0, h, _ROWS):
            y1 = min(h, y + _ROWS)
            thr2 = cv2.LUT(contrast[y:y1], thr2_of_contrast)
            np.logical_or(delta_e[y:y1] > t_colour, var8[y:y1] > thr2, out=evidence[y:y1])
    else:
        t_tex = float("nan")
        evidence = delta_e > t_colour
    logger.debug("cloth_mask: colour threshold %.2f, texture threshold %.2f, border noise %.2f",
                 t_colour, t_tex, noise50)

    m = _morph(evidence.view(np.uint8), cv2.MORPH_CLOSE, cfg.close_px * unit)
    m = _largest_filled(m)
    if cfg.boundary_band > 0 and m.any():
        win = max(3, int(round(cfg.boundary_window * unit)) | 1)
        # Only pixels of m matter: work on m's bounding box plus a margin that keeps both filters exact
        # (>= 1 background pixel for the 3x3 distance transform, >= win // 2 for the local maximum).
        bx, by, bw, bh = cv2.boundingRect(m.view(np.uint8))
        pad = win // 2 + 2
        x0, y0, x1, y1 = max(0, bx - pad), max(0, by - pad), min(w, bx + bw + pad), min(h, by + bh + pad)
        mc = m[y0:y1, x0:x1]
        dc = delta_e[y0:y1, x0:x1]
        # depth <= band (3x3 chamfer distance to the background) <=> not in the erosion by the chamfer ball
        near_edge = cv2.erode(mc.view(np.uint8), _chamfer3_ball(cfg.boundary_band * unit)) == 0
        local_max = cv2.dilate(dc, cv2.getStructuringElement(cv2.MORPH_RECT, (win, win)))
        halo = near_edge & (dc < cfg.boundary_contrast * local_max)
        mc &= ~halo
    m = _morph(m.view(np.uint8), cv2.MORPH_OPEN, cfg.open_px * unit)
    t_low = max(cfg.low_delta_e, cfg.delta_e_noise_factor * noise99)
    if cfg.low_delta_e > 0 and t_low < t_colour:
        pieces = _low_contrast_pieces(lab8, delta_e, m, t_low, cfg, unit)
        if pieces.any():
            m |= pieces
            m |= (_morph(m, cv2.MORPH_CLOSE, cfg.low_close_px * unit) > 0) & (delta_e > t_low)
    m = _largest_filled(m)
    if cfg.smooth_sigma > 0 and m.any():
        s = cfg.smooth_sigma * unit
        m = _largest_filled(cv2.GaussianBlur(m.astype(np.float32), (0, 0), s) >= 0.5)

    frac = cv2.countNonZero(m.view(np.uint8)) / m.size
    if frac < cfg.min_area_fraction:
        raise InputError(f"no garment found: the mask covers {frac:.2%} of the image "
                         f"(< {cfg.min_area_fraction:.1%}); is the garment as light as the background?")
    if frac > cfg.max_area_fraction:
        raise InputError(f"no garment found: the mask covers {frac:.2%} of the image "
                         f"(> {cfg.max_area_fraction:.0%}), i.e. there is no background")
    return m


def _low_contrast_pieces(lab8: np.ndarray, delta_e: np.ndarray, m: np.ndarray, t_low: float, cfg: ClothMaskConfig,
                         unit: float) -> np.ndarray:
    """Wide pieces of a garment within ``t_colour`` of a clean backdrop (a white tee on white), outside ``m``.

    A white garment differs from a white backdrop by 1-2.5 Delta E and its folds vary; the halo and soft shadow a
    garment casts are that faint too but form thin bands, and a pasted backdrop patch is flat. Candidates are pixels
    above ``t_low`` whose L varies (local standard deviation above ``low_texture``); an opening keeps the pieces
    ``low_open_px`` wide and only pieces of ``low_min_area_fraction`` of the image count. Computed at half size
    (the pieces are wide), upsampled with nearest neighbour.
    """
    h, w = m.shape
    size = (max(1, w // 2), max(1, h // 2))
    de2 = cv2.resize(delta_e, size, interpolation=cv2.INTER_AREA)
    lum2 = cv2.resize(cv2.extractChannel(lab8, 0), size, interpolation=cv2.INTER_AREA)
    var2 = _local_var_u8(lum2, 5)  # a 5x5 window at half size: 10 px
    t_var8 = (cfg.low_texture / _L_GAIN) ** 2
    m2 = cv2.resize(m.view(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    cand = ((de2 > t_low) & (var2 > t_var8) & (m2 == 0)).view(np.uint8)
    cand = _morph(_morph(cand, cv2.MORPH_CLOSE, 3), cv2.MORPH_OPEN, cfg.low_open_px * unit / 2)
    if cv2.countNonZero(cand) < cfg.low_min_area_fraction * size[0] * size[1]:
        return np.zeros((h, w), bool)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(cand, connectivity=8)
    big = stats[:, cv2.CC_STAT_AREA] >= cfg.low_min_area_fraction * size[0] * size[1]
    big[0] = False
    if not big[1:].any():
        return np.zeros((h, w), bool)
    pieces = big[labels].view(np.uint8)
    return cv2.resize(pieces, (w, h), interpolation=cv2.INTER_NEAREST).view(bool)


class OpenCVClothMask(Backend):
    """``cloth-mask-opencv``: `cloth_mask` behind the back-end protocol (no model; a backdrop colour model)."""

    NAME = NAME
    KIND = "cloth_mask"
    APPROXIMATE = APPROXIMATE
    LICENCE = "vitonprep + OpenCV (Apache-2.0)"
    Config = ClothMaskConfig

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        return cloth_mask(rgb, self.config)


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
# _LAB_SCALE applied to every 8-bit Lab value (1x256x3 float32): cv2.LUT of the 8-bit Lab image with this table
# gives exactly _lab's values without the float copy of the whole image
_LAB_LUT = cv2.transform(np.repeat(np.arange(256, dtype=np.float32)[:, None], 3, axis=1)[None], _LAB_SCALE)
_LAB_GAIN = np.array([100.0 / 255.0, 1.0, 1.0])
_LAB_OFFSET = np.array([0.0, -128.0, -128.0])
_L_GAIN = 100.0 / 255.0
_CONTRAST_Q = 2.0  # Delta E quantisation (steps per unit) of the texture-contrast dilation
_ROWS = 64  # row band of the per-pixel passes (temporaries stay in cache)
# squared-difference weights that turn 8-bit Lab differences into CIE76 Delta E^2
_DE2_WEIGHTS = (_LAB_GAIN ** 2).astype(np.float32).reshape(1, 3)


def _lab(rgb: np.ndarray) -> np.ndarray:
    """CIE Lab as float32 with L in 0..100 and a, b centred on 0."""
    return cv2.transform(cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32), _LAB_SCALE)


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


def _border_samples(lab: np.ndarray, band: int) -> tuple[np.ndarray, int, int, int]:
    """Border-band samples of the 1/4-scale (area-averaged) float32 Lab image ``lab``: (values float64 (N, 3),
    small height, small width, small band), in `_strips` order."""
    h, w = lab.shape[:2]
    # the backdrop is smooth: fit on a 1/4-scale copy (area-averaged, which also lowers the noise)
    f = 4 if min(h, w) >= 64 else 1
    small = cv2.resize(lab, (max(2, w // f), max(2, h // f)), interpolation=cv2.INTER_AREA) if f > 1 else lab
    sh, sw = small.shape[:2]
    sb = max(1, band // f)
    return _strips(small, sb).astype(np.float64), sh, sw, sb


def _border_samples_lab8(lab8: np.ndarray, band: int) -> tuple[np.ndarray, int, int, int]:
    """`_border_samples` of ``cv2.LUT(lab8, _LAB_LUT)`` without converting the whole image.

    With an integer 1/4 scale (both sides multiples of 4) INTER_AREA averages aligned 4x4 blocks, so resizing
    just the four border strips gives exactly the border of the full resize; other sizes take the full path.
    """
    h, w = lab8.shape[:2]
    f = 4
    sb = max(1, band // f)
    sh, sw = h // f, w // f
    if min(h, w) < 64 or h % f or w % f or sh - 2 * sb < 1 or sw - 2 * sb < 1:
        return _border_samples(cv2.LUT(lab8, _LAB_LUT), band)
    k = sb * f

    def area(block: np.ndarray) -> np.ndarray:
        bh, bw = block.shape[:2]
        return cv2.resize(cv2.LUT(block, _LAB_LUT), (bw // f, bh // f), interpolation=cv2.INTER_AREA)

    parts = (area(lab8[:k]), area(lab8[h - k:]), area(lab8[k:h - k, :k]), area(lab8[k:h - k, w - k:]))
    vals = np.concatenate([p.reshape(-1, 3) for p in parts]).astype(np.float64)
    return vals, sh, sw, sb


@functools.lru_cache(maxsize=8)
def _border_design(sh: int, sw: int, sb: int) -> np.ndarray:
    """Quadratic design matrix of the border samples of an sh x sw image (band sb), read-only."""
    ys, xs = _strip_coords(sh, sw, sb)
    a = _design((xs + 0.5) / sw - 0.5, (ys + 0.5) / sh - 0.5)
    a.setflags(write=False)
    return a


def _fit_surface(vals: np.ndarray, sh: int, sw: int, sb: int) -> np.ndarray:
    """Coefficients (6, 3) of the robust quadratic fit of the border samples (see `_strips` for their order)."""
    a = _border_design(sh, sw, sb)
    # start from the median colour: border pixels far from it are a garment touching the frame
    median_colour = np.median(vals, axis=0)
    resid = np.sqrt(((vals - median_colour) ** 2).sum(axis=1))
    inl = resid <= max(10.0, 3.0 * float(np.median(resid)))
    coef = np.zeros((6, 3))
    coef[0] = median_colour
    for _ in range(3):
        if inl.sum() < 24:
            break
        coef = _least_squares(a[inl], vals[inl])
        resid = np.sqrt(((vals - a @ coef) ** 2).sum(axis=1))
        inl = resid <= max(3.0, 4.0 * 1.4826 * float(np.median(resid[inl])))
    return coef


def _least_squares(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """argmin ||a x - b|| by the normal equations (a small, well-conditioned 6-column design), lstsq fallback."""
    try:
        return np.linalg.solve(a.T @ a, a.T @ b)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(a, b, rcond=None)[0]


def _delta_e_lab8(lab8: np.ndarray, coef: np.ndarray, rows: int = _ROWS) -> np.ndarray:
    """CIE76 Delta E between the image (8-bit Lab) and the fitted backdrop surface ``coef``.

    The surface is evaluated on a coarse grid of pixel centres, converted to 8-bit Lab units and upsampled; the
    distance is computed in bands of ``rows`` rows (cache-sized temporaries) from the
    8-bit differences weighted by the squared channel gains.
    """
    h, w = lab8.shape[:2]
    gh, gw = max(2, h // 8), max(2, w // 8)
    gy, gx = np.meshgrid((np.arange(gh) + 0.5) / gh - 0.5, (np.arange(gw) + 0.5) / gw - 0.5, indexing="ij")
    grid = ((_design(gx.ravel(), gy.ravel()) @ coef - _LAB_OFFSET) / _LAB_GAIN).reshape(gh, gw, 3)
    bg8 = cv2.resize(grid.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    delta_e = np.empty((h, w), np.float32)
    for y in range(0, h, rows):
        y1 = min(h, y + rows)
        d = cv2.subtract(lab8[y:y1].astype(np.float32), bg8[y:y1])
        cv2.multiply(d, d, dst=d)
        de = delta_e[y:y1]
        cv2.transform(d, _DE2_WEIGHTS, dst=de)
        cv2.sqrt(de, dst=de)
    return delta_e


@functools.lru_cache(maxsize=16)
def _chamfer3_ball(radius: float) -> np.ndarray:
    """Offsets within ``radius`` under the 3x3 chamfer metric of cv2.distanceTransform(DIST_L2, 3)
    (a = 0.955 per axis step, b = 1.3693 per diagonal step), as an erosion kernel."""
    n = int(radius / 0.955) + 1
    dy, dx = np.abs(np.mgrid[-n:n + 1, -n:n + 1])
    lo, hi = np.minimum(dx, dy), np.maximum(dx, dy)
    return ((1.3693 * lo + 0.955 * (hi - lo)) <= radius).astype(np.uint8)


def _local_var_u8(lum8: np.ndarray, win: int) -> np.ndarray:
    """Variance of a uint8 plane in a win x win box around each pixel (float32; may be slightly negative).

    Computed in bands of rows with a margin of win // 2 rows: the 8-bit box sums are exact integers, so every
    band gives the values of the whole-image filters, with cache-sized temporaries.
    """
    h, w = lum8.shape
    k = win // 2
    out = np.empty((h, w), np.float32)
    for y in range(0, h, _ROWS):
        y1 = min(h, y + _ROWS)
        a, b = max(0, y - k), min(h, y1 + k)
        src = lum8[a:b]
        mean = cv2.boxFilter(src, cv2.CV_32F, (win, win), borderType=cv2.BORDER_REFLECT_101)
        mean_sq = cv2.sqrBoxFilter(src, cv2.CV_32F, (win, win), borderType=cv2.BORDER_REFLECT_101)
        cv2.multiply(mean, mean, dst=mean)
        cv2.subtract(mean_sq[y - a:y1 - a], mean[y - a:y1 - a], dst=out[y:y1])
    return out


def _morph(m: np.ndarray, op: int, diameter: float) -> np.ndarray:
    d = int(round(diameter))
    if d < 2:
        return m
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (d, d))
    return cv2.morphologyEx(m, op, k)


def _largest_filled(m: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of ``m`` with its interior holes filled."""
    # findContours leaves its input alone (OpenCV >= 3.2): a bool mask is passed as its 0/1 bytes, not copied
    src = m.view(np.uint8) if m.dtype == bool else m.astype(np.uint8, copy=False)
    contours, _ = cv2.findContours(src, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = np.zeros(m.shape, np.uint8)
    if contours:
        areas = [cv2.contourArea(c) + 0.5 * cv2.arcLength(c, True) + 1.0 for c in contours]
        cv2.drawContours(out, contours, int(np.argmax(areas)), 1, thickness=cv2.FILLED)
    return out.view(bool)  # only 0 and 1 are drawn, so the bytes are valid bools
