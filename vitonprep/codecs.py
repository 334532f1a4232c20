"""Encoders and strict decoders for every field kind of the shard contract.

The same decoders serve `vitonprep validate`, `export` and the trainer, so what validate accepts is exactly what
training reads. Decoders are strict: a mask that is not {0,255}, a label map that is not single-channel, or an RGB
field stored in another mode raise `DecodeError` instead of being coerced.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
from PIL import Image

from vitonprep.schema import FIELDS_BY_MEMBER, Field, Kind

#: JPEG qualities of the VITON-HD files (preprocess_spec section 1.1): photos and DensePose q95, agnostic and
#: cloth-mask q75. Inside shards masks are PNG; JPEG is used only for RGB fields.
JPEG_QUALITY = {"image": 95, "cloth": 95, "image_densepose": 95, "agn": 75}


#: zlib level of every PNG we write: level 1 is 2-4x faster to encode than 6 and masks/label maps stay small
#: (a 768x1024 mask is ~7 KB instead of ~3 KB, next to ~80 KB per JPEG).
PNG_COMPRESS_LEVEL = 1


class DecodeError(ValueError):
    """A field's bytes do not decode to what the contract promises."""


def encode_jpeg(rgb: np.ndarray, quality: int = 95) -> bytes:
    _check_rgb_array(rgb)
    buf = io.BytesIO()
    # subsampling=2 is 4:2:0, as in the VITON-HD files; no EXIF, no ICC.
    Image.fromarray(rgb, "RGB").save(buf, format="JPEG", quality=quality, subsampling=2)
    return buf.getvalue()


def encode_png_rgb(rgb: np.ndarray) -> bytes:
    _check_rgb_array(rgb)
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def encode_mask_png(mask: np.ndarray) -> bytes:
    if mask.ndim != 2:
        raise ValueError(f"mask must be HxW, got shape {mask.shape}")
    arr = (np.asarray(mask).astype(bool).astype(np.uint8)) * 255
    buf = io.BytesIO()
    Image.fromarray(arr, "L").save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def encode_labels_png(labels: np.ndarray, palette: list[int] | None = None) -> bytes:
    """Palette PNG with indices = labels (CIHP palette by default, as VITON-HD's image-parse-v3)."""
    if labels.ndim != 2 or labels.dtype != np.uint8:
        raise ValueError(f"label map must be HxW uint8, got {labels.shape} {labels.dtype}")
    if palette is None:
        from vitonprep.derive.labels import CIHP_PALETTE

        palette = CIHP_PALETTE
    img = Image.fromarray(labels, "P")
    img.putpalette(palette)
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def encode_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _check_rgb_array(rgb: np.ndarray) -> None:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"RGB image must be HxWx3 uint8, got {rgb.shape} {rgb.dtype}")


def _open(data: bytes, what: str) -> Image.Image:
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except Exception as exc:  # PIL raises many types for truncated/garbage data
        raise DecodeError(f"{what}: cannot decode image ({type(exc).__name__}: {exc})") from exc
    return img


def decode_rgb(data: bytes, what: str = "rgb") -> np.ndarray:
    img = _open(data, what)
    if img.mode != "RGB":
        raise DecodeError(f"{what}: expected an RGB image, found mode {img.mode}")
    return np.asarray(img, dtype=np.uint8)


def decode_mask_raw(data: bytes, what: str = "mask") -> np.ndarray:
    """Single-channel uint8 values as stored (no thresholding)."""
    img = _open(data, what)
    if img.mode != "L":
        raise DecodeError(f"{what}: expected a single-channel (L) mask, found mode {img.mode}")
    return np.asarray(img, dtype=np.uint8)


def decode_mask(data: bytes, what: str = "mask") -> np.ndarray:
    arr = decode_mask_raw(data, what)
    bad = ~np.isin(arr, (0, 255))
    if bad.any():
        values = np.unique(arr[bad])[:5].tolist()
        raise DecodeError(f"{what}: mask is not binary ({int(bad.sum())} pixels with values like {values})")
    return arr == 255


def decode_labels(data: bytes, what: str = "labels") -> np.ndarray:
    img = _open(data, what)
    if img.mode not in ("P", "L"):
        raise DecodeError(f"{what}: label map must be a palette (P) or L PNG, found mode {img.mode}")
    return np.asarray(img, dtype=np.uint8)


def decode_json(data: bytes, what: str = "json") -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DecodeError(f"{what}: invalid JSON ({exc})") from exc


_DECODERS = {
    Kind.RGB: decode_rgb,
    Kind.MASK: decode_mask,
    Kind.LABELS: decode_labels,
    Kind.KEYPOINTS: decode_json,
    Kind.META: decode_json,
}


def decode_field(field: Field, data: bytes, key: str = "?") -> Any:
    return _DECODERS[field.kind](data, f"{key}.{field.member}")


def decode_member(member_suffix: str, data: bytes) -> Any:
    """webdataset-style decoder: ``decode_member('agn_mask.png', b'...')``; None for unknown members.

    Use as ``wds.WebDataset(urls).decode(decode_member)`` so masks and label maps never meet an RGB decoder.
    """
    field = FIELDS_BY_MEMBER.get(member_suffix.lstrip("."))  # webdataset passes ".agn_mask.png"
    if field is None:
        return None
    return decode_field(field, data)
