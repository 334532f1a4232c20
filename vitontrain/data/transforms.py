"""From a decoded shard sample (HWC numpy, the shard contract) to the model's batch contract (CHW torch tensors).

The model contract (``vitontrain.models.stableviton``): ``image``, ``agn``, ``image_densepose``, ``cloth`` float in
[-1, 1] with 3 channels; ``agn_mask`` 1 = keep (visible), 0 = region to generate — the *inverse* of the shard's
``agn_mask`` (True = inpaint); ``gt_cloth_warped_mask`` 1 = garment as worn; ``cloth_mask`` 1 = garment.

Resizing: images with cv2 bilinear (``INTER_LINEAR``, what the official ``A.Resize`` does), or ``INTER_AREA`` when
shrinking by more than 2× (bilinear would alias). Masks are resized with ``INTER_AREA`` and re-thresholded at 0.5, so
they stay binary (the official code feeds soft, bilinearly resized masks; a documented deviation).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import cv2
import numpy as np
import torch

IMAGE_FIELDS = ("image", "agn", "image_densepose", "cloth")
MASK_FIELDS = ("agn_mask", "cloth_mask", "gt_cloth_warped_mask")
TENSOR_FIELDS = IMAGE_FIELDS + MASK_FIELDS


def resize_image(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    if (h, w) == (height, width):
        return rgb
    shrink = min(h / height, w / width)
    interp = cv2.INTER_AREA if shrink > 2.0 else cv2.INTER_LINEAR
    return cv2.resize(rgb, (width, height), interpolation=interp)


def resize_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """Boolean mask → boolean mask of the new size (area-averaged, then thresholded at 0.5)."""
    if mask.shape[:2] == (height, width):
        return mask.astype(bool, copy=False)
    soft = cv2.resize(mask.astype(np.float32), (width, height), interpolation=cv2.INTER_AREA)
    return soft >= 0.5


def resize_sample(sample: Mapping[str, Any], height: int, width: int) -> dict[str, Any]:
    """Resize every image and mask the model reads; other fields are passed through untouched."""
    out = dict(sample)
    for name in IMAGE_FIELDS:
        if name in sample:
            out[name] = resize_image(sample[name], height, width)
    for name in MASK_FIELDS:
        if name in sample:
            out[name] = resize_mask(sample[name], height, width)
    return out


def image_to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """HWC uint8 → CHW float32 in [-1, 1]."""
    # One pass in numpy, then a contiguous CHW copy: converting a permuted (strided) tensor is ~5x slower.
    scaled = np.multiply(rgb, np.float32(1.0 / 127.5), dtype=np.float32)
    scaled -= np.float32(1.0)
    return torch.from_numpy(np.ascontiguousarray(scaled.transpose(2, 0, 1)))


def mask_to_tensor(mask: np.ndarray) -> torch.Tensor:
    """HW bool (or float in [0,1]) → 1HW float32."""
    return torch.from_numpy(np.array(mask, dtype=np.float32, copy=True))[None]


def to_model_sample(sample: Mapping[str, Any], height: int | None = None, width: int | None = None,
                    as_uint8: bool = False) -> dict[str, Any]:
    """One decoded shard sample → one model sample (tensors CHW, plus ``__key__`` and ``meta`` when present).

    ``agn_mask`` is inverted here to the model's keep-convention. A sample without ``gt_cloth_warped_mask`` (test
    data) gets zeros, as the official dataset does. ``as_uint8``: images stay uint8 0..255 and masks uint8 0/1
    (4× less to move between processes and to the GPU); :func:`normalise_batch` makes them model-ready.
    """
    if height is not None and width is not None:
        sample = resize_sample(sample, height, width)
    h, w = sample["image"].shape[:2]
    image = _uint8_chw if as_uint8 else image_to_tensor
    mask = _mask_uint8 if as_uint8 else mask_to_tensor
    out: dict[str, Any] = {name: image(sample[name]) for name in IMAGE_FIELDS}
    out["agn_mask"] = mask(~sample["agn_mask"].astype(bool))
    dtype = torch.uint8 if as_uint8 else torch.float32
    out["cloth_mask"] = mask(sample["cloth_mask"]) if "cloth_mask" in sample else torch.ones(1, h, w, dtype=dtype)
    warped = sample.get("gt_cloth_warped_mask")
    out["gt_cloth_warped_mask"] = mask(warped) if warped is not None else torch.zeros(1, h, w, dtype=dtype)
    out["__key__"] = sample.get("__key__", "")
    if "meta" in sample:
        out["meta"] = sample["meta"]
    return out


def _uint8_chw(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))


def _mask_uint8(mask: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(mask, dtype=np.uint8, copy=True))[None]


def normalise_batch(batch: Mapping[str, Any]) -> dict[str, Any]:
    """uint8 batches (``as_uint8``) → the model contract: images float [-1, 1], masks float {0, 1}; float batches
    pass through. Run it where the batch lands (on the GPU the conversion is free)."""
    out = dict(batch)
    for name in IMAGE_FIELDS:
        if name in out and out[name].dtype == torch.uint8:
            out[name] = out[name].float().div_(127.5).sub_(1.0)
    for name in MASK_FIELDS:
        if name in out and out[name].dtype == torch.uint8:
            out[name] = out[name].float()
    return out


def collate(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Stack tensors into NCHW; keys and metas become lists."""
    if not samples:
        raise ValueError("cannot collate an empty list of samples")
    batch: dict[str, Any] = {name: torch.stack([s[name] for s in samples]) for name in TENSOR_FIELDS}
    batch["__key__"] = [s.get("__key__", "") for s in samples]
    batch["meta"] = [s.get("meta", {}) for s in samples]
    return batch
