"""Encoders and strict decoders for every field kind of the shard contract.

The same decoders serve `vitonprep validate`, `export` and the trainer, so what validate accepts is exactly what
training reads. Decoders are strict: a mask that is not {0,255}, a label map that is not single-channel, or an RGB
field stored in another mode raise `DecodeError` instead of being coerced.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from typing import Any

import numpy as np
from PIL import Image
from zlib_ng import zlib_ng

from vitonprep.captions import check_caption
from vitonprep.derive.labels import CIHP_PALETTE
from vitonprep.errors import VitonprepError
from vitonprep.schema import FIELDS_BY_MEMBER, Field, Kind

#: JPEG qualities of the VITON-HD files (docs/architecture.md, "Data contract"): photos and DensePose q95, agnostic and
#: cloth-mask q75. Inside shards masks are PNG; JPEG is used only for RGB fields.
JPEG_QUALITY = {"image": 95, "cloth": 95, "image_densepose": 95, "agn": 75}


#: zlib level of every PNG we write: level 1 is 2-4x faster to encode than 6; with the run-length strategy
#: (``_deflate``) a 768x1024 mask is ~4 KB, a label map ~8 KB, next to ~80 KB per JPEG.
PNG_COMPRESS_LEVEL = 1


#: largest image a shard member may hold, checked from its header before anything is inflated: a crafted
#: 100 KB PNG can claim 30000x30000 pixels (900 MB). 16x VITON-HD's 768x1024 leaves room for larger datasets.
MAX_PIXELS = 16 * 768 * 1024


class DecodeError(VitonprepError, ValueError):
    """A field's bytes do not decode to what the contract promises (a ValueError too: callers that predate the
    package's base error catch it as one)."""


def encode_jpeg(rgb: np.ndarray, quality: int = 95) -> bytes:
    _check_rgb_array(rgb)
    buf = io.BytesIO()
    # subsampling=2 is 4:2:0, as in the VITON-HD files; no EXIF, no ICC.
    Image.fromarray(rgb, "RGB").save(buf, format="JPEG", quality=quality, subsampling=2)
    return buf.getvalue()


#: PNG colour types (PNG spec 11.2.2) and scanline filter types (9.2) used by :func:`_png`.
_PNG_GREY, _PNG_RGB, _PNG_PALETTE = 0, 2, 3
_FILTER_NONE, _FILTER_UP = 0, 2


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def _deflate(raw: np.ndarray) -> bytes:
    # Z_RLE: as fast as level 1's default strategy on these maps and 40-60 % smaller (long runs of one value).
    # Run-length matching keeps no hash table, so the bytes depend on the input alone (not on what the process
    # compressed before, as ISA-L's level 1 did). zlib-ng runs the same algorithm 4-5x faster than the stdlib's
    # zlib and writes the same bytes (tests/test_schema.py checks both).
    z = zlib_ng.compressobj(PNG_COMPRESS_LEVEL, zlib_ng.DEFLATED, 15, 8, zlib_ng.Z_RLE)
    return z.compress(raw) + z.flush()


def _png(arr: np.ndarray, colour_type: int, row_filter: int, palette: bytes = b"") -> bytes:
    """8-bit, non-interlaced PNG of a C-contiguous uint8 array, one fixed filter for every scanline.

    Written directly with zlib because PIL tries all five filters on every row of L/RGB images (adaptive
    filtering): 2-4x slower on our 768x1024 maps, for files no smaller. Masks and label maps are large flat
    regions that compress as well without a filter; the skeleton render compresses best with Up. Lossless
    either way: every PNG decoder reads back the same pixels (checked with PIL and libpng via OpenCV).
    """
    h, w = arr.shape[:2]
    rows = arr.reshape(h, -1)
    raw = np.empty((h, rows.shape[1] + 1), np.uint8)
    raw[:, 0] = row_filter
    if row_filter == _FILTER_UP:  # Up: byte minus the byte above, mod 256; the first row has a zero prior
        raw[0, 1:] = rows[0]
        np.subtract(rows[1:], rows[:-1], out=raw[1:, 1:])
    else:
        raw[:, 1:] = rows
    ihdr = struct.pack(">IIBBBBB", w, h, 8, colour_type, 0, 0, 0)
    return b"".join((b"\x89PNG\r\n\x1a\n", _png_chunk(b"IHDR", ihdr),
                     _png_chunk(b"PLTE", palette) if palette else b"",
                     _png_chunk(b"IDAT", _deflate(raw)),
                     _png_chunk(b"IEND", b"")))


def encode_png_rgb(rgb: np.ndarray) -> bytes:
    _check_rgb_array(rgb)
    return _png(np.ascontiguousarray(rgb), _PNG_RGB, _FILTER_UP)


def encode_mask_png(mask: np.ndarray) -> bytes:
    if mask.ndim != 2:
        raise ValueError(f"mask must be HxW, got shape {mask.shape}")
    arr = np.asarray(mask).astype(bool).view(np.uint8) * np.uint8(255)
    return _png(arr, _PNG_GREY, _FILTER_NONE)


def encode_labels_png(labels: np.ndarray, palette: list[int] | None = None) -> bytes:
    """Palette PNG with indices = labels (CIHP palette by default, as VITON-HD's image-parse-v3)."""
    if labels.ndim != 2 or labels.dtype != np.uint8:
        raise ValueError(f"label map must be HxW uint8, got {labels.shape} {labels.dtype}")
    if palette is None:
        palette = CIHP_PALETTE
    entries = list(palette)[: 256 * 3]
    if not entries or len(entries) % 3:
        raise ValueError(f"palette must hold 1-256 RGB triples, got {len(palette)} values")
    return _png(np.ascontiguousarray(labels), _PNG_PALETTE, _FILTER_NONE, bytes(entries))


def encode_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _check_rgb_array(rgb: np.ndarray) -> None:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"RGB image must be HxWx3 uint8, got {rgb.shape} {rgb.dtype}")


#: bands of the 8-bit modes :func:`pixels` packs itself
_BANDS = {"L": 1, "P": 1, "RGB": 3}


def pixels(img: Image.Image) -> np.ndarray:
    """``np.asarray(img)`` (read-only uint8) for L, P and RGB images, one copy cheaper.

    PIL's ``tobytes`` packs an image in 64 KB blocks and joins them: 4.4 ms for a 768x1024 RGB photo. Packed
    in one block of the image's size (0.36 ms), the bytes are the array. Other modes, or a Pillow without the raw
    encoder, take ``np.asarray``.
    """
    bands = _BANDS.get(img.mode)
    img.load()
    w, h = img.size
    if bands is None or w == 0 or h == 0 or not hasattr(Image, "_getencoder"):
        return np.asarray(img)
    enc = Image._getencoder(img.mode, "raw", img.mode)
    try:
        enc.setimage(img.im, (0, 0, w, h))
        _, status, data = enc.encode(w * h * bands)
    finally:
        enc.cleanup()
    if status != 1 or len(data) != w * h * bands:  # not packed in one go: let PIL do it its way
        return np.asarray(img)
    return np.frombuffer(data, np.uint8).reshape((h, w, bands) if bands > 1 else (h, w))


def _open(data: bytes, what: str) -> Image.Image:
    try:
        img = Image.open(io.BytesIO(data))  # reads the header only
        w, h = img.size
        if w * h > MAX_PIXELS:
            raise DecodeError(f"{what}: {w}x{h} image is over the {MAX_PIXELS}-pixel limit of a shard member")
        img.load()
    except DecodeError:
        raise
    except Exception as exc:  # PIL raises many types for truncated/garbage data
        raise DecodeError(f"{what}: cannot decode image ({type(exc).__name__}: {exc})") from exc
    return img


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_MODES = {_PNG_GREY: ("L", 1), _PNG_RGB: ("RGB", 3), _PNG_PALETTE: ("P", 1)}
_PNG_CRITICAL = {b"IHDR", b"PLTE", b"IDAT", b"IEND"}


def _png_fast(data: bytes) -> tuple[str, np.ndarray] | None:
    """(PIL mode, pixels) of a PNG laid out the way :func:`_png` writes them, else None.

    That is: 8-bit L, RGB or P, not interlaced, only IHDR/PLTE/IDAT/IEND chunks with good CRCs, every row
    filtered None or every row Up. Such a PNG is inflated by zlib-ng, ~30x faster than the zlib inside Pillow on
    our run-length streams (a 768x1024 mask: 3 ms -> 0.1 ms). Anything else, damaged files included, returns
    None and goes to PIL, so what is accepted or refused, and the message, stay PIL's.
    """
    if not data.startswith(_PNG_SIGNATURE):
        return None
    pos, chunks, idat = len(_PNG_SIGNATURE), [], []
    while pos + 12 <= len(data):
        (n,) = struct.unpack_from(">I", data, pos)
        tag, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        if tag not in _PNG_CRITICAL or len(body) != n or pos + 12 + n > len(data):
            return None
        (crc,) = struct.unpack_from(">I", data, pos + 8 + n)
        if zlib_ng.crc32(tag + body) & 0xFFFFFFFF != crc:
            return None
        chunks.append(tag)
        if tag == b"IDAT":
            idat.append(body)
        pos += 12 + n
        if tag == b"IEND":
            break
    if not chunks or chunks[0] != b"IHDR" or chunks[-1] != b"IEND" or pos != len(data) or not idat:
        return None
    w, h, depth, colour, method, filt, interlace = struct.unpack_from(">IIBBBBB", data, 16)
    mode = _PNG_MODES.get(colour)
    if mode is None or depth != 8 or method or filt or interlace or w == 0 or h == 0 \
            or (colour == _PNG_PALETTE) != (b"PLTE" in chunks):
        return None
    if w * h > MAX_PIXELS:  # PIL's path refuses it with the message
        return None
    stride = w * mode[1]
    inflate = zlib_ng.decompressobj()
    try:  # inflate no more than the image can hold: a stream that claims more is not ours
        raw = inflate.decompress(b"".join(idat), h * (stride + 1) + 1)
    except zlib_ng.error:
        return None
    if len(raw) != h * (stride + 1) or not inflate.eof:  # too long, or not a whole stream (checksum included)
        return None
    rows = np.frombuffer(raw, np.uint8).reshape(h, stride + 1)
    filters = rows[:, 0]
    if not filters.any():  # None
        out = rows[:, 1:].copy()
    elif (filters == _FILTER_UP).all():  # Up: each row adds the decoded row above (mod 256)
        out = rows[:, 1:].copy()
        for y in range(1, h):  # a row at a time: 3x faster than np.cumsum(axis=0) here
            np.add(out[y - 1], out[y], out=out[y])
    else:
        return None
    return mode[0], out.reshape((h, w, mode[1]) if mode[1] > 1 else (h, w))


def _decode_image(data: bytes, what: str, modes: tuple[str, ...], refusal: str) -> np.ndarray:
    """Pixels of an image whose PIL mode is one of ``modes``; DecodeError(``refusal`` formatted with the mode)."""
    fast = _png_fast(data)
    if fast is not None:
        mode, arr = fast
        img = None
    else:
        img = _open(data, what)
        mode = img.mode
    if mode not in modes:
        raise DecodeError(f"{what}: {refusal.format(mode=mode)}")
    return arr if img is None else pixels(img)


def decode_rgb(data: bytes, what: str = "rgb") -> np.ndarray:
    return _decode_image(data, what, ("RGB",), "expected an RGB image, found mode {mode}")


def decode_mask_raw(data: bytes, what: str = "mask") -> np.ndarray:
    """Single-channel uint8 values as stored (no thresholding)."""
    return _decode_image(data, what, ("L",), "expected a single-channel (L) mask, found mode {mode}")


def decode_mask(data: bytes, what: str = "mask") -> np.ndarray:
    arr = decode_mask_raw(data, what)
    bad = (arr != 0) & (arr != 255)  # 10x faster than np.isin on a full-size mask
    if bad.any():
        values = np.unique(arr[bad])[:5].tolist()
        raise DecodeError(f"{what}: mask is not binary ({int(bad.sum())} pixels with values like {values})")
    return arr == 255


def decode_labels(data: bytes, what: str = "labels") -> np.ndarray:
    return _decode_image(data, what, ("P", "L"), "label map must be a palette (P) or L PNG, found mode {mode}")


def decode_json(data: bytes, what: str = "json") -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DecodeError(f"{what}: invalid JSON ({exc})") from exc
    except RecursionError as exc:  # json's parser recurses per nesting level: a crafted member can exhaust it
        raise DecodeError(f"{what}: JSON nested too deep") from exc


def decode_caption(data: bytes, what: str = "caption") -> Any:
    """caption.json: JSON with the exact shape `vitonprep.captions.caption_record` writes."""
    obj = decode_json(data, what)
    try:
        return check_caption(obj)
    except ValueError as exc:
        raise DecodeError(f"{what}: {exc}") from exc


_DECODERS = {
    Kind.RGB: decode_rgb,
    Kind.MASK: decode_mask,
    Kind.LABELS: decode_labels,
    Kind.KEYPOINTS: decode_json,
    Kind.META: decode_json,
    Kind.CAPTION: decode_caption,
}


def decode_field(field: Field, data: bytes, key: str = "?") -> Any:
    return _DECODERS[field.kind](data, f"{key}.{field.member}")


def decode_member(member_suffix: str, data: bytes) -> Any:
    """webdataset-style decoder: ``decode_member('agn_mask.png', b'...')``; None for unknown members.

    Use as ``wds.WebDataset(urls).decode(decode_member, pre=[], post=[])``: masks and label maps never meet an RGB
    decoder, and members it does not know stay bytes (webdataset's default handlers, behind it otherwise, unpickle
    ``.pyd``/``.pickle`` and ``torch.load`` ``.pth`` members: code planted in a shard would run).
    """
    field = FIELDS_BY_MEMBER.get(member_suffix.lstrip("."))  # webdataset passes ".agn_mask.png"
    if field is None:
        return None
    return decode_field(field, data)
