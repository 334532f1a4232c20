"""Colour models of the heuristic parser: Lab histograms, a robust skin Gaussian, fast order statistics."""

from __future__ import annotations

import math

import cv2
import numpy as np

# Lab histogram layout (OpenCV 8-bit Lab): L in 8 bins, a and b in 32 bins of 4 over 64..191 (clipped).
LB, AB, AB_LO, AB_STEP = 8, 32, 64, 4
NBINS = LB * AB * AB
MIN_SAMPLES = 30  # fewer seed pixels than this give no usable histogram or Gaussian

# generic skin colour (OpenCV 8-bit Lab a, b) used when no face or hand is visible; wide on purpose
SKIN_AB_MEAN = np.array([142.0, 145.0])
SKIN_AB_ICOV = np.linalg.inv(np.array([[30.0, 10.0], [10.0, 60.0]]))


def lab_bins(lab: np.ndarray) -> np.ndarray:
    """Histogram bin of every pixel of an OpenCV 8-bit Lab image."""
    lb = lab[..., 0].astype(np.int32) >> 5
    a = np.clip((lab[..., 1].astype(np.int32) - AB_LO) // AB_STEP, 0, AB - 1)
    b = np.clip((lab[..., 2].astype(np.int32) - AB_LO) // AB_STEP, 0, AB - 1)
    return (lb * AB + a) * AB + b


def hist_model(bins: np.ndarray, sigma_ab: float = 1.0, uniform: float = 0.0) -> np.ndarray | None:
    """Smoothed, normalised log histogram over the Lab bins mixed with a ``uniform`` share of a flat
    distribution (colours the seeds did not show); None if there are too few samples."""
    if bins.size < MIN_SAMPLES:
        return None
    hist = np.bincount(bins.ravel(), minlength=NBINS).astype(np.float32).reshape(LB, AB, AB)
    k = int(2 * round(2 * sigma_ab) + 1)
    for i in range(LB):
        hist[i] = cv2.GaussianBlur(hist[i], (k, k), sigma_ab)
    pad = np.concatenate([hist[:1], hist, hist[-1:]])  # lightness: blur without wrapping round
    hist = 0.5 * hist + 0.25 * (pad[:-2] + pad[2:])
    hist = (1.0 - uniform) * hist / hist.sum() + uniform / NBINS
    return np.log(hist.ravel() + 1e-7)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Bhattacharyya coefficient (0: disjoint, 1: equal) of the colour distributions of two sets of
    histogram bins (``lab_bins``), on a coarse grid (4 lightness x 8 x 8 a / b cells: shading and folds of
    one fabric stay in one or two cells); 0 when either set is empty."""
    if a.size == 0 or b.size == 0:
        return 0.0
    def coarse(x: np.ndarray) -> np.ndarray:
        cell = ((x // (AB * AB)) >> 1) * 64 + (((x // AB) % AB) >> 2) * 8 + ((x % AB) >> 2)
        return np.bincount(cell.ravel(), minlength=256) / x.size
    return float(np.sqrt(coarse(a) * coarse(b)).sum())


def gauss_fit(x: np.ndarray, keep: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """Robust Gaussian (mean, inverse covariance) of the rows of x: refit on the closest ``keep`` fraction.

    The covariance gets 1 (first fit) then 4 (refits) added on its diagonal: a floor of one / two Lab units
    so that a flat face does not make every other pixel infinitely unlikely.
    """
    x = x.astype(np.float64)
    mu = median0(x)
    cov = np.cov(x.T) + np.eye(x.shape[1])
    for _ in range(3):
        d = mahal(x, mu, np.linalg.inv(cov))
        sel = x[d <= quantile(d, keep)]
        mu = sel.mean(0)
        cov = np.cov(sel.T) + np.eye(x.shape[1]) * 4.0
    return mu, np.linalg.inv(cov)


# np.median / np.quantile cost ~0.1 ms each in argument handling on these ~1000-sample arrays; the two helpers
# below take the same order statistics (np.partition) and do numpy's arithmetic on them: the same values.
def median0(x: np.ndarray) -> np.ndarray:
    """``np.median(x, 0)`` of an array without NaN (floats, or integers below 2**53): the middle row, or the
    mean of the two middle rows (their sum halved, as np.mean does)."""
    k = x.shape[0] // 2
    if x.shape[0] % 2:
        return np.partition(x, k, axis=0)[k]
    part = np.partition(x, (k - 1, k), axis=0)
    return (part[k - 1] + part[k]) / 2


def quantile(d: np.ndarray, q: float) -> float:
    """``np.quantile(d, q)`` (default 'linear' method) of a 1-D array: numpy's interpolation between the order
    statistics around the virtual index (n - 1) q."""
    n = d.size
    v = (n - 1) * q
    lo = math.floor(v)
    if n < 2 or lo >= n - 1 or not np.isfinite(d).all():
        return float(np.quantile(d, q))
    a, b = np.partition(d, (lo, lo + 1))[lo:lo + 2]
    g = v - lo
    diff = b - a
    return float(b - diff * (1 - g) if g >= 0.5 else a + diff * g)


def mahal(x: np.ndarray, mu: np.ndarray, icov: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distance of 2-vectors (last axis) to ``mu``."""
    d0 = x[..., 0] - mu[0]
    d1 = x[..., 1] - mu[1]
    return d0 * d0 * icov[0, 0] + 2.0 * icov[0, 1] * d0 * d1 + d1 * d1 * icov[1, 1]


def argbest(stack: np.ndarray, largest: bool = True) -> np.ndarray:
    """np.argmax / argmin over axis 0 of a small stack of maps (faster than numpy's axis-0 reduction)."""
    best = stack[0].copy()
    idx = np.zeros(best.shape, np.uint8)
    for i in range(1, stack.shape[0]):
        better = stack[i] > best if largest else stack[i] < best
        np.copyto(best, stack[i], where=better)
        idx[better] = i
    return idx
