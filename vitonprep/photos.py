"""Loading raw photos robustly and fitting them to the 768x1024 canvas.

Handles what real folders contain: EXIF orientation, RGBA (composited on white), CMYK, palette, grayscale and
16-bit images. Every problem raises `PhotoError` with the file and the reason, so the runner can record it.
"""

from __future__ import annotations

import hashlib
import io
import re
import unicodedata
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vitonprep.codecs import pixels
from vitonprep.config import MAX_PHOTO_PIXELS
from vitonprep.errors import PhotoError
from vitonprep.schema import KEY_PATTERN

PHOTO_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
#: the Pillow formats a photo may be opened as (JPEG's opener also takes the multi-picture JPEGs some cameras
#: write); anything else is refused before its decoder runs, whatever the file is named
PHOTO_FORMATS = ("JPEG", "PNG", "WEBP")
#: smaller photos cannot carry a usable person or garment
MIN_SIDE = 64


@dataclass(frozen=True)
class Fit:
    """How a photo was mapped onto the canvas: ``out = in * scale + offset`` (pixels)."""

    mode: str  # "pad" | "crop"
    scale: float
    offset: tuple[float, float]
    original_size: tuple[int, int]  # (w, h) after EXIF rotation

    def to_dict(self) -> dict:
        return {"mode": self.mode, "scale": self.scale, "offset": list(self.offset),
                "original_size": list(self.original_size)}


def load_photo(data: bytes, what: str, max_pixels: int = MAX_PHOTO_PIXELS) -> np.ndarray:
    """Decode to RGB uint8, EXIF orientation applied; RGBA on white; 16-bit scaled to 8-bit.

    The format (JPEG, PNG, WebP) and the size (``max_pixels``) are checked from the header, before any pixel is
    decoded: a decompression bomb, a huge scan or a GIF named .jpg is one PhotoError, never a worker's memory."""
    if not data:
        raise PhotoError(f"{what}: empty file (0 bytes)")
    try:
        with warnings.catch_warnings():  # Pillow warns from 89 MP; the budget below is the rule that holds
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=PHOTO_FORMATS)
        w, h = img.size
        if w * h > max_pixels:
            raise PhotoError(f"{what}: {w}x{h} is {w * h / 1e6:.0f} MP, over the pixel budget of "
                             f"{max_pixels / 1e6:.0f} MP (pipeline setting max_photo_pixels); scale the photo down")
        img.load()
        ImageOps.exif_transpose(img, in_place=True)  # in place: no copy of an upright photo
    except PhotoError:
        raise
    except Image.DecompressionBombError as exc:  # Pillow's own limit, met before ours when the budget is raised
        raise PhotoError(f"{what}: not decoded, a decompression bomb: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise PhotoError(f"{what}: not an image the build reads (JPEG, PNG or WebP); it looks like "
                         f"{_sniff(data)}") from exc
    except (OSError, SyntaxError, ValueError, MemoryError) as exc:
        raise PhotoError(f"{what}: cannot decode ({exc}); the file is probably truncated or corrupt") from exc
    if min(img.size) < MIN_SIDE:
        raise PhotoError(f"{what}: {img.size[0]}x{img.size[1]} is too small (minimum side {MIN_SIDE} px)")
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    elif mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        img = Image.fromarray(np.clip(arr * (255.0 if arr.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(canvas, rgba)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return pixels(img)


_SIGNATURES = ((b"GIF8", "a GIF"), (b"II*\x00", "a TIFF"), (b"MM\x00*", "a TIFF"), (b"BM", "a BMP"),
               (b"%PDF", "a PDF"), (b"\x00\x00\x00\x0cjP", "a JPEG 2000"))


def _sniff(data: bytes) -> str:
    """What an unreadable file seems to be, for the message (HEIC/AVIF are ISO boxes with an 'ftyp' brand)."""
    if data[4:8] == b"ftyp":
        brand = data[8:12].decode("ascii", "replace")
        return "a HEIC/HEIF photo" if brand.startswith(("hei", "mif", "hev")) else (
            "an AVIF photo" if brand.startswith("avi") else f"an ISO media file (brand {brand!r})")
    for magic, name in _SIGNATURES:
        if data.startswith(magic):
            return name
    return "a file of unrecognised format"


def canvas_fit(original_size: tuple[int, int], size: tuple[int, int], mode: str) -> Fit:
    """The fit `fit_to_canvas` gives a photo of ``original_size`` (w, h) on a ``size`` (w, h) canvas: ``pad``
    scales it inside, ``crop`` over the canvas, centred either way."""
    if mode not in ("pad", "crop"):
        raise ValueError(f"fit must be 'pad' or 'crop', not {mode!r}")
    (w, h), (iw, ih) = size, original_size
    scale = min(w / iw, h / ih) if mode == "pad" else max(w / iw, h / ih)
    nw, nh = max(1, round(iw * scale)), max(1, round(ih * scale))
    return Fit(mode, float(scale), (float((w - nw) // 2), float((h - nh) // 2)), (iw, ih))


def fit_to_canvas(rgb: np.ndarray, size: tuple[int, int], mode: str) -> tuple[np.ndarray, Fit]:
    """Scale into ``size`` (w, h): ``pad`` keeps the whole photo (borders filled with the photo's median border
    colour), ``crop`` fills the canvas and cuts the centre. Area interpolation when shrinking."""
    import cv2  # slow to import; readers that never fit a photo to the canvas do not pay for it

    w, h = size
    ih, iw = rgb.shape[:2]
    fit = canvas_fit((iw, ih), size, mode)
    scale = fit.scale
    nw, nh = max(1, round(iw * scale)), max(1, round(ih * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    resized = cv2.resize(rgb, (nw, nh), interpolation=interp) if (nw, nh) != (iw, ih) else rgb
    ox, oy = int(fit.offset[0]), int(fit.offset[1])
    if (nw, nh) == (w, h):
        # the photo already fills the canvas exactly (pad and crop agree): no border; a copy only when the
        # decoded array is read-only (numpy views of PIL's buffer are), since the canvas is the caller's to edit
        canvas = resized if resized.flags.writeable and resized.flags.c_contiguous else resized.copy()
    elif mode == "pad":
        border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
        fill = np.median(border, axis=0).astype(np.uint8)
        # copyMakeBorder writes the borders and copies the photo in one pass (numpy's broadcast fill of a
        # 3-channel colour over the whole canvas cost more than the resize)
        canvas = cv2.copyMakeBorder(np.ascontiguousarray(resized), oy, h - nh - oy, ox, w - nw - ox,
                                    cv2.BORDER_CONSTANT, value=[int(c) for c in fill])
    else:
        canvas = np.ascontiguousarray(resized[-oy:-oy + h, -ox:-ox + w])
    return canvas, fit


def jpeg_stored_as_is(data: bytes, fit: Fit, size: tuple[int, int]) -> bool:
    """True when ``data`` can be stored unchanged as the canvas photo: an RGB (YCbCr) JPEG of exactly ``size``
    with no EXIF rotation, which the fit left untouched. Its decoded pixels are then exactly the canvas the
    pipeline worked on, and storing the original bytes avoids a second JPEG generation (and its encode time)."""
    if fit.scale != 1.0 or fit.offset != (0.0, 0.0) or tuple(fit.original_size) != tuple(size):
        return False
    try:
        img = Image.open(io.BytesIO(data))
        ok = img.format == "JPEG" and img.mode == "RGB" and img.size == tuple(size)
        return bool(ok and img.getexif().get(0x0112, 1) == 1)  # 0x0112 = Orientation
    except Exception:  # header unreadable here although the decode succeeded: re-encode instead
        return False


def key_from_name(path: Path) -> str:
    """A legal sample key from a file name: the stem if legal, else an ASCII fold plus a short hash (unique)."""
    stem = path.stem
    if KEY_PATTERN.match(stem):
        return stem
    folded = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    folded = re.sub(r"[^A-Za-z0-9_\-]+", "_", folded).strip("_") or "photo"
    return f"{folded}-{hashlib.sha1(stem.encode('utf-8')).hexdigest()[:6]}"
