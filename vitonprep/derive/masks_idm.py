"""IDM-VTON / OOTDiffusion automatic inpainting masks and the DressCode-style mask.

Sources (docs/architecture.md, "Agnostic mask"): (IDM-VTON gradio_demo/utils_mask.py = OOTDiffusion run/utils_ootd.py
``get_mask_location``) and the DressCode mask (IDM-VTON inference_dc.py / aimagelab dress-code
data/dataset.py). Labels are SCHP-ATR ids 0..17 plus IDM's 18 = neck.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np
from PIL import Image, ImageDraw

from .labels import cihp_to_atr

logger = logging.getLogger(__name__)

__all__ = ["MODEL_TYPES", "CATEGORIES", "get_mask_location", "dresscode_mask", "cihp_to_idm_parse"]

MODEL_TYPES: tuple[str, ...] = ("hd", "dc")
CATEGORIES: tuple[str, ...] = ("upper_body", "lower_body", "dresses")

_ARM_WIDTH = {"hd": 60, "dc": 45}
_HEAD = (1, 3, 11)                      # hat, sunglasses, face
_FIXED = (9, 10, 1, 3, 16)              # shoes, hat, sunglasses, bag
_NECK = 18


def cihp_to_idm_parse(cihp: np.ndarray) -> np.ndarray:
    """CIHP label map -> IDM parse (ATR ids, CIHP 10 neck -> 18), for get_mask_location."""
    return cihp_to_atr(cihp, neck_label=_NECK)


def _check(category: str, model_type: str | None = None) -> None:
    if model_type is not None and model_type not in MODEL_TYPES:
        raise ValueError(f"model_type must be one of {', '.join(MODEL_TYPES)}; got {model_type!r}")
    if category not in CATEGORIES:
        raise ValueError(f"category must be one of {', '.join(CATEGORIES)}; got {category!r}")


def _resize_parse(parse: np.ndarray, width: int, height: int) -> np.ndarray:
    a = np.asarray(parse)
    if a.ndim != 2:
        raise ValueError(f"parse must be HxW, got shape {a.shape}")
    if a.shape == (height, width):
        return a.astype(np.uint8)
    return np.array(Image.fromarray(a.astype(np.uint8)).resize((width, height), Image.NEAREST))


def _pose18(pose: np.ndarray) -> np.ndarray:
    p = np.asarray(pose, dtype=np.float64)
    if p.ndim == 1 and p.size in (36, 54, 72):
        p = p.reshape(18, -1)
    if p.ndim != 2 or p.shape[0] != 18 or p.shape[1] < 2:
        raise ValueError(f"expected COCO-18 keypoints of shape (18, 2|3|4), got {p.shape}")
    return p[:, :2]


def _int_coords(points: list[np.ndarray]) -> list[int]:
    # IDM casts to uint16 (truncation); negative values would wrap, so clip them to 0.
    flat = np.concatenate(points)
    return np.clip(np.trunc(flat), 0, 65535).astype(np.int64).tolist()


def _dilate(mask: np.ndarray, k: int, iterations: int) -> np.ndarray:
    out = cv2.dilate(mask.astype(np.uint8), np.ones((k, k), np.uint8), iterations=iterations)
    return out > 0


def _missing(pt: np.ndarray) -> bool:
    return bool(pt[0] <= 1.0 and pt[1] <= 1.0)


def _hole_fill(mask: np.ndarray) -> np.ndarray:
    img = mask.astype(np.uint8) * 255
    img[0, :] = img[-1, :] = 0
    img[:, 0] = img[:, -1] = 0
    filled = img.copy()
    ff = np.zeros((img.shape[0] + 2, img.shape[1] + 2), np.uint8)
    cv2.floodFill(filled, ff, (0, 0), 255)
    return (img > 0) | (filled == 0)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_NONE)
    out = np.zeros(mask.shape, np.uint8)
    if contours:
        best = max(range(len(contours)), key=lambda i: abs(cv2.contourArea(contours[i])))
        cv2.drawContours(out, contours, best, 255, thickness=-1)
    return out > 0


def get_mask_location(model_type: str, category: str, atr_parse: np.ndarray,
                      pose18_384x512: np.ndarray, width: int = 384,
                      height: int = 512) -> np.ndarray:
    """IDM-VTON / OOTDiffusion ``get_mask_location``; True = inpaint.

    ``atr_parse``: IDM labels (ATR 0..17 + 18 neck), any size (nearest-resized).
    ``pose18_384x512``: COCO-18 keypoints in 384x512 pixels (missing = x, y <= 1).
    Deviations: coordinates are clipped at 0 instead of wrapping through uint16, and an
    arm whose shoulder or elbow is missing falls back to the parsed arm region (like a
    missing wrist) instead of drawing towards (0, 0).
    """
    _check(category, model_type)
    parse = _resize_parse(atr_parse, width, height)
    pose = _pose18(pose18_384x512)
    arm_width = _ARM_WIDTH[model_type]

    head = np.isin(parse, _HEAD)
    fixed = np.isin(parse, _FIXED)
    if category == "upper_body":
        cloth = np.isin(parse, (4, 7))
        fixed |= np.isin(parse, (5, 6))
    elif category == "lower_body":
        cloth = np.isin(parse, (6, 12, 13, 5))
        fixed |= np.isin(parse, (4, 14, 15))
    else:  # dresses
        cloth = np.isin(parse, (7, 4, 5, 6))
    changeable = (parse == 0) | ((parse != 0) & ~fixed)

    arms = np.zeros((height, width), bool)
    if category in ("upper_body", "dresses"):
        s = height / 512.0
        line_w = int(arm_width / 512 * height)
        half = line_w // 2
        for label, (sh, el, wr), reverse in ((15, (2, 3, 4), False), (14, (5, 6, 7), True)):
            parse_arm = parse == label
            shoulder, elbow, wrist = pose[sh] * s, pose[el] * s, pose[wr] * s
            if _missing(wrist) or _missing(elbow) or _missing(shoulder):
                arm = parse_arm
            else:
                wrist = elbow + 1.2 * (wrist - elbow)
                chain = [wrist, elbow, shoulder] if reverse else [shoulder, elbow, wrist]
                canvas = Image.new("L", (width, height), 0)
                draw = ImageDraw.Draw(canvas)
                draw.line(_int_coords(chain), fill=255, width=line_w, joint="curve")
                draw.arc([shoulder[0] - half, shoulder[1] - half, shoulder[0] + half,
                          shoulder[1] + half], 0, 360, fill=255, width=half)
                arm = np.array(canvas) > 0
            fixed |= parse_arm & ~arm          # hands stay
            arms |= arm

    fixed |= head
    cloth = _dilate(cloth, 5, 5)
    if category in ("upper_body", "dresses"):
        neck = _dilate(parse == _NECK, 5, 1) & ~head
        cloth |= neck
        cloth |= _dilate(arms, 5, 4)

    keep = (changeable & ~cloth) | fixed
    inpaint = ~keep
    return _largest_component(_hole_fill(inpaint))


def dresscode_mask(category: str, atr_parse: np.ndarray, pose18_384x512: np.ndarray,
                   height: int, width: int, variant: str = "idm") -> np.ndarray:
    """DressCode-style inpainting mask; True = inpaint.

    ``variant='idm'`` (IDM-VTON inference_dc.py) also dilates arms 5x5 x5 and the cloth
    10x10 x5 for 256 < H <= 512; ``'dresscode'`` (aimagelab/dress-code) does not.
    Deviations: each arm's missing wrist (and then elbow) is dropped independently, and
    the neck cut row is clipped at 0.
    """
    _check(category)
    if variant not in ("idm", "dresscode"):
        raise ValueError(f"variant must be 'idm' or 'dresscode'; got {variant!r}")
    parse = _resize_parse(atr_parse, width, height)
    pose = _pose18(pose18_384x512)
    s = height / 512.0

    head = np.isin(parse, (1, 2, 3, 11))
    fixed = np.isin(parse, (2, 9, 10, 1, 3, 17, 16))
    if category == "dresses":
        cloth = np.isin(parse, (7, 12, 13))
    elif category == "upper_body":
        cloth = parse == 4
        fixed |= np.isin(parse, (5, 6))
    else:
        cloth = np.isin(parse, (6, 12, 13))
        fixed |= np.isin(parse, (4, 14, 15))
    changeable = (parse == 0) | ((parse != 0) & ~fixed)
    parse_arms = np.isin(parse, (14, 15))

    # arms: one polyline wrist_L - elbow_L - shoulder_L - shoulder_R - elbow_R - wrist_R
    pts = {i: pose[i] * s for i in range(2, 8)}
    left = [7, 6] if not _missing(pts[7]) else ([6] if not _missing(pts[6]) else [])
    right = [3, 4] if not _missing(pts[4]) else ([3] if not _missing(pts[3]) else [])
    chain = left + [5, 2] + right
    canvas = Image.new("L", (width, height), 0)
    ImageDraw.Draw(canvas).line(_int_coords([pts[i] for i in chain]), fill=255, width=30,
                                joint="curve")
    im_arms = np.array(canvas) > 0
    if height > 512:
        im_arms = _dilate(im_arms, 10, 5)
    elif height > 256 and variant == "idm":
        im_arms = _dilate(im_arms, 5, 5)
    fixed |= parse_arms & ~im_arms
    cloth |= im_arms

    # neck: head pixels below the shoulder line (minus 20 px at 512) become cloth
    xs = np.array([pts[2][0], pts[5][0]])
    ys = np.array([pts[2][1], pts[5][1]])
    m, c = np.linalg.lstsq(np.stack([xs, np.ones(2)], 1), ys, rcond=None)[0]
    head_kept = head.copy()
    for col in range(width):
        row = max(0, int(col * m + c - 20 * s))
        head_kept[row:, col] = False
    fixed |= head_kept
    cloth |= head & ~head_kept

    if height > 512:
        cloth = _dilate(cloth, 20, 5)
    elif height > 256 and variant == "idm":
        cloth = _dilate(cloth, 10, 5)
    else:
        cloth = _dilate(cloth, 5, 5)
    keep = (changeable & ~cloth) | fixed
    return ~keep
