"""The heuristic parser's entry points: the ``parsing-heuristic-mediapipe`` back-end (`HeuristicParser`),
``parse_person`` (full-size photo -> CIHP labels) and ``parsing_miou``."""

from __future__ import annotations

import math

import cv2
import numpy as np

from vitonprep.backends.parsing_heuristic.body import Body
from vitonprep.backends.parsing_heuristic.colour import lab_bins
from vitonprep.backends.parsing_heuristic.config import CATEGORIES, HeuristicParsingConfig
from vitonprep.backends.parsing_heuristic.labels import assign_labels, fit_to_mask
from vitonprep.backends.parsing_heuristic.regions import head_geometry, limb_distances, torso_frame
from vitonprep.backends.parsing_heuristic.scores import class_map, colour_models, horizontal_edges, skin_model
from vitonprep.backends.protocols import Backend, PhotoRect
from vitonprep.backends.results import PoseResult
from vitonprep.derive.labels import to_hrviton_groups
from vitonprep.errors import InputError, NoPersonError

NAME = "parsing-heuristic-mediapipe"
APPROXIMATE = True

MIN_WORK_SIDE = 8  # the working map is never smaller than this many pixels a side
BOX_MARGIN = 0.03  # the crop around the person mask, fraction of the working height (at least 4 px)
DEFAULT_CONFIG = HeuristicParsingConfig()


class HeuristicParser(Backend):
    """``parsing-heuristic-mediapipe``: (rgb, pose with a person mask, category) -> CIHP labels, no model of its
    own (it reads the pose back-end's keypoints and person mask), hence approximate."""

    NAME = NAME
    KIND = "parsing"
    APPROXIMATE = APPROXIMATE
    LICENCE = "vitonprep + mediapipe models (Apache-2.0)"
    Config = HeuristicParsingConfig
    PHOTO_RECT = True

    def __call__(self, rgb: np.ndarray, pose: PoseResult, category: str, rect: PhotoRect | None = None
                 ) -> np.ndarray:
        return parse_person(rgb, pose, self.config, category=category, rect=rect)


def parse_person(rgb: np.ndarray, pose: PoseResult, config: HeuristicParsingConfig = DEFAULT_CONFIG,
                 category: str = "upper_body", rect: PhotoRect | None = None) -> np.ndarray:
    """HxW uint8 CIHP label map of the person in ``rgb`` (HxWx3 uint8) from its pose result.

    ``pose`` must carry a person mask (``MediapipePose`` with segmentation on). ``category`` is the garment
    category of the pair, a prior only: the photo decides what the person wears. Upper clothes (5) and pants (9)
    / skirt (12) become one dress (6) when they share one colour and the lower part is not split between the
    legs (with ``"dresses"`` at a lower colour similarity, and a top without any lower garment is a dress).
    ``rect``: the photo on the canvas (`PhotoRect`, default all of it): background outside it, and a head cut by
    its top is cut by the frame. Raises `InputError` for a bad image, an unknown category or a missing /
    misshapen person mask, and `NoPersonError` (an InputError) for an empty person mask.
    """
    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
        raise InputError(f"expected an H x W x 3 uint8 RGB image, got {a.dtype} {a.shape}")
    if category not in CATEGORIES:
        raise InputError(f"unknown category {category!r}; expected one of {CATEGORIES}")
    if pose.person_mask is None:
        raise InputError("the pose result has no person mask (run the pose back-end with segmentation on)")
    H, W = a.shape[:2]
    pm = np.asarray(pose.person_mask, np.float32)
    if pm.shape != (H, W):
        raise InputError(f"person mask shape {pm.shape} does not match the image {(H, W)}")
    rect = rect or PhotoRect.whole(W, H)
    if not rect.is_whole(W, H):  # the pad band of ``fit: pad`` shows no person
        pm = pm.copy()
        rect.outside(pm)
    full_mask = pm > config.mask_threshold
    if not full_mask.any():
        raise NoPersonError("the person mask is empty: no person pixel to parse")

    scale = min(1.0, config.work_height / H)
    h, w = max(MIN_WORK_SIDE, int(round(H * scale))), max(MIN_WORK_SIDE, int(round(W * scale)))
    sx, sy = w / W, h / H
    scale = (sx + sy) / 2
    pms = cv2.resize(pm, (w, h), interpolation=cv2.INTER_LINEAR) if scale < 1 else pm
    mask = pms > config.mask_threshold
    if not mask.any():
        raise NoPersonError("the person mask is empty at the working resolution")
    body = Body(pose, scale, (h, w), rect.scaled(sx, sy, w, h))
    # work inside the person's box (plus a margin): everything outside is background anyway
    rows, cols = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
    pad = max(4, int(BOX_MARGIN * h))
    y0, y1 = max(0, rows[0] - pad), min(h, rows[-1] + 1 + pad)
    x0, x1 = max(0, cols[0] - pad), min(w, cols[-1] + 1 + pad)
    body.shift(-x0, -y0)
    rgb_box = resize_area_box(a, (w, h), (y0, y1, x0, x1)) if scale < 1 else a[y0:y1, x0:x1]
    lab = np.zeros((h, w), np.uint8)
    lab[y0:y1, x0:x1] = labels_small(np.ascontiguousarray(rgb_box), mask[y0:y1, x0:x1], body, config, category, h)
    if scale == 1:
        return fit_to_mask(lab, full_mask)
    # back to full resolution inside the person's box only (outside it everything is background)
    fy0, fy1 = int(y0 / sy), min(H, int(np.ceil(y1 / sy)))
    fx0, fx1 = int(x0 / sx), min(W, int(np.ceil(x1 / sx)))
    big = cv2.resize(lab[y0:y1, x0:x1], (fx1 - fx0, fy1 - fy0), interpolation=cv2.INTER_NEAREST)
    out = np.zeros((H, W), np.uint8)
    out[fy0:fy1, fx0:fx1] = fit_to_mask(cv2.medianBlur(big, 3), full_mask[fy0:fy1, fx0:fx1])
    return out


def labels_small(rgb: np.ndarray, mask: np.ndarray, body: Body, cfg: HeuristicParsingConfig,
                 category: str, unit: int) -> np.ndarray:
    """Labels of a crop at the working resolution; ``unit`` = working image height (sets filter sizes)."""
    labc = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
    bins = lab_bins(labc)
    edges = horizontal_edges(labc, body.sw)
    body.refine_cut_chin(edges)
    frame = torso_frame(mask, body)
    head = head_geometry(frame, body, cfg)
    limbs = limb_distances(frame, body, cfg)
    skin = skin_model(labc, mask, frame, body, head, cfg)
    models, alike = colour_models(bins, mask, frame, body, head, limbs, skin)
    cls = class_map(bins, mask, frame, body, head, limbs, skin, models, cfg, unit, edges)
    return assign_labels(cls, mask, body, head, limbs, cfg, category, unit, alike)


def resize_area_box(img: np.ndarray, size: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray:
    """``cv2.resize(img, size, interpolation=cv2.INTER_AREA)[y0:y1, x0:x1]`` (box = (y0, y1, x0, x1)), resizing
    only the source pixels under the box.

    INTER_AREA (downscaling) makes each output pixel a weighted sum of the source pixels it covers, with weights
    that repeat every period (p source pixels -> q output pixels, p/q the scale in lowest terms). A crop cut at
    period boundaries has the same scale and the same weight tables, so its output is that box of the full output,
    bit for bit. Anything but a downscale on both axes resizes the whole image.
    """
    H, W = img.shape[:2]
    w, h = size
    y0, y1, x0, x1 = box
    if not (w < W and h < H):
        return cv2.resize(img, size, interpolation=cv2.INTER_AREA)[y0:y1, x0:x1]
    gx, gy = math.gcd(W, w), math.gcd(H, h)
    qx, qy = w // gx, h // gy  # output pixels per period
    px, py = W // gx, H // gy  # source pixels per period
    X0, Y0 = x0 // qx, y0 // qy  # periods
    X1, Y1 = -(-x1 // qx), -(-y1 // qy)
    src = img[Y0 * py:Y1 * py, X0 * px:X1 * px]
    out = cv2.resize(src, ((X1 - X0) * qx, (Y1 - Y0) * qy), interpolation=cv2.INTER_AREA)
    return out[y0 - Y0 * qy:y1 - Y0 * qy, x0 - X0 * qx:x1 - X0 * qx]


def parsing_miou(pred: np.ndarray, truth: np.ndarray) -> tuple[float, dict[int, float]]:
    """Mean IoU over HR-VITON's 13 groups (``vitonprep.derive.labels.to_hrviton_groups``) of two CIHP label maps.

    Each group present in either map gets IoU = |pred & truth| / |pred | truth|; the mean is over those groups.
    Returns (mean IoU, {group: IoU}). Raises ValueError on a shape mismatch.
    """
    p = to_hrviton_groups(np.asarray(pred))
    g = to_hrviton_groups(np.asarray(truth))
    if p.shape != g.shape:
        raise ValueError(f"shape mismatch: prediction {p.shape}, truth {g.shape}")
    n = 13
    inter = np.bincount((p[p == g]).ravel(), minlength=n)[:n]
    cp = np.bincount(p.ravel(), minlength=n)[:n]
    cg = np.bincount(g.ravel(), minlength=n)[:n]
    union = cp + cg - inter
    ious = {int(k): float(inter[k] / union[k]) for k in range(n) if union[k] > 0}
    if not ious:
        return 1.0, {}
    return float(np.mean(list(ious.values()))), ious
