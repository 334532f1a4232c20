"""Overlays that show a sample's defects at a glance: every map drawn on the person photo it belongs to.

Panels of one sample, all at one height: the skeleton on the photo (right limbs warm, left limbs cool, so a
mirrored skeleton shows), the parse blended on the photo (CIHP palette, half opacity), DensePose blended, the
agnostic mask tinted red with the worn-garment mask (``gt_cloth_warped_mask``) outlined green, ``agn.jpg``, and the
garment with its mask outlined. Maps are scaled down before blending, so a panel costs its own pixels, not the
photo's. A member that is missing or does not decode becomes a labelled dark panel, never an exception.
"""

from __future__ import annotations

import functools
import io
import textwrap
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vitonprep import codecs
from vitonprep.derive.body25 import BODY25_NAMES, BODY25_PAIRS, OpenPoseKeypoints
from vitonprep.derive.labels import CIHP_LABELS, CIHP_PALETTE
from vitonprep.inspect.collect import PRODUCER_FIELDS, SampleRecord, text
from vitonprep.schema import FIELDS_BY_MEMBER
from vitonprep.shards import Sample

#: panel titles, in drawing order
PANELS = ("photo + pose (R warm, L cool)", "parse on photo", "densepose on photo",
          "agn_mask red, gt_warped green", "agn.jpg", "cloth + cloth_mask")
#: the panels of a report thumbnail (the ones where most defects show)
THUMB_PANELS = (0, 1, 3)

_PALETTE = np.asarray(CIHP_PALETTE, np.uint8).reshape(-1, 3)
_RIGHT, _LEFT, _MID = (255, 64, 32), (32, 160, 255), (255, 230, 0)
_FLAG, _PASSED, _UNCHECKED, _PLAIN = (255, 110, 90), (120, 230, 120), (170, 170, 170), (235, 235, 235)
_BG = (28, 28, 28)


@functools.lru_cache(maxsize=8)
def font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's bundled scalable font (no system font needed); its bitmap font where FreeType is missing."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # pragma: no cover - Pillow without FreeType
        return ImageFont.load_default()


def _side(joint: int) -> tuple[int, int, int]:
    name = BODY25_NAMES[joint]
    return _RIGHT if name.startswith("R") else _LEFT if name.startswith("L") else _MID


def _decode(sample: Sample, member: str) -> tuple[Any, str | None]:
    """(value, None) or (None, why it cannot be drawn)."""
    data = sample.members.get(member)
    if data is None:
        return None, f"{member}: missing"
    try:
        return codecs.decode_field(FIELDS_BY_MEMBER[member], data, sample.key), None
    except codecs.DecodeError:
        return None, f"{member}: undecodable"


def _rgb(sample: Sample, member: str, w: int, h: int) -> tuple[np.ndarray | None, tuple[int, int], str | None]:
    """(pixels at least ``w`` x ``h``, the stored size, None) or (None, (0, 0), why it cannot be drawn).

    A JPEG is decoded at the smallest 1/2, 1/4 or 1/8 scale that still covers the panel (PIL's draft mode: 2-4x
    faster than the full decode validate does); the pixel limit of a shard member is checked from the header."""
    data = sample.members.get(member)
    if data is None:
        return None, (0, 0), f"{member}: missing"
    try:
        img = Image.open(io.BytesIO(data))
        size = img.size
        if size[0] * size[1] > codecs.MAX_PIXELS:
            return None, (0, 0), f"{member}: over the pixel limit"
        if img.format == "JPEG" and img.mode == "RGB":
            img.draft("RGB", (w, h))
        img.load()
    except Exception:  # PIL raises many types for truncated or garbage data; validate names the cause
        return None, (0, 0), f"{member}: undecodable"
    if img.mode != "RGB":
        return None, (0, 0), f"{member}: mode {img.mode}, not RGB"
    return np.asarray(img), size, None


def _note(w: int, h: int, note: str) -> np.ndarray:
    img = Image.new("RGB", (w, h), (90, 20, 20))
    ImageDraw.Draw(img).multiline_text((6, h // 2 - 10), "\n".join(textwrap.wrap(note, 24)), font=font(14),
                                       fill=(255, 255, 255))
    return np.asarray(img)


def _fit(arr: np.ndarray, w: int, h: int, nearest: bool = False) -> np.ndarray:
    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_AREA
    return cv2.resize(np.ascontiguousarray(arr), (w, h), interpolation=interp)


def _blend(photo: np.ndarray, colour: np.ndarray, where: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    mixed = cv2.addWeighted(np.ascontiguousarray(photo), 1 - alpha, np.ascontiguousarray(colour), alpha, 0)
    out = photo.copy()
    np.copyto(out, mixed, where=where[..., None])
    return out


def _outline(img: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int], thickness: int) -> np.ndarray:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = np.ascontiguousarray(img.copy())
    cv2.drawContours(out, contours, -1, colour, thickness, lineType=cv2.LINE_AA)
    return out


def _skeleton(photo: np.ndarray, pose: Any, scale: tuple[float, float], thickness: int) -> np.ndarray:
    kp = OpenPoseKeypoints.from_json_dict(pose).pose  # ValueError on a malformed pose (validate says why)
    out = np.ascontiguousarray(photo.copy())
    # a point far outside the panel is a corrupt pose: not drawn (OpenCV takes only 32-bit coordinates)
    far = 8 * max(out.shape[:2])
    pts = [(int(round(px)), int(round(py))) if c > 0.05 and abs(px) <= far and abs(py) <= far else None
           for px, py, c in ((x * scale[0], y * scale[1], c) for x, y, c in kp.astype(np.float64).tolist())]
    for a, b in BODY25_PAIRS:
        if pts[a] is not None and pts[b] is not None:
            # a limb takes its far joint's side; the torso's central bones take the neck's/mid-hip's colour
            cv2.line(out, pts[a], pts[b], _side(b) if BODY25_NAMES[b][0] in "RL" else _side(a), thickness,
                     cv2.LINE_AA)
    for i, p in enumerate(pts):
        if p is not None:
            cv2.circle(out, p, thickness + 1, _side(i), -1, cv2.LINE_AA)
            cv2.circle(out, p, thickness + 1, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def panels(sample: Sample, h: int, which: tuple[int, ...] | None = None) -> list[np.ndarray]:
    """The overlay panels of ``sample`` (indices into PANELS; all by default), each ``h`` tall and 3/4 as wide."""
    which = tuple(range(len(PANELS))) if which is None else which
    w = h * 3 // 4
    thick = max(2, h // 160)
    image, size, why = _rgb(sample, "image.jpg", w, h)
    photo = _fit(image, w, h) if image is not None else None
    scale = (w / size[0], h / size[1]) if image is not None else (1.0, 1.0)

    def on_photo(member: str, draw) -> np.ndarray:
        if photo is None:
            return _note(w, h, why or "")
        value, bad = _decode(sample, member)
        if bad:
            return _note(w, h, bad)
        try:
            return draw(value)
        except (ValueError, TypeError, OverflowError) as exc:  # labels out of range, a malformed pose (a text
            # or an object for a number, an integer too large for a float)
            return _note(w, h, f"{member}: {exc}")

    def parse(labels: np.ndarray) -> np.ndarray:
        small = _fit(labels, w, h, nearest=True)
        if small.size and int(small.max()) >= len(_PALETTE):
            raise ValueError("labels out of range")
        return _blend(photo, _PALETTE[small], small > 0)

    def densepose() -> np.ndarray:
        rgb, _, bad = _rgb(sample, "image_densepose.jpg", w, h)
        if photo is None or rgb is None:
            return _note(w, h, (why if photo is None else bad) or "")
        small = _fit(rgb, w, h)
        return _blend(photo, small, small.max(axis=2) > 16)  # DensePose draws parts on black

    def masks(agn_mask: np.ndarray) -> np.ndarray:
        small = _fit(agn_mask.astype(np.uint8), w, h, nearest=True) > 0
        out = _blend(photo, np.full_like(photo, (255, 0, 0)), small, 0.45)
        out = _outline(out, small, (255, 40, 40), max(1, thick // 2))
        gt, bad = _decode(sample, "gt_cloth_warped_mask.png")
        if gt is not None:
            out = _outline(out, _fit(gt.astype(np.uint8), w, h, nearest=True) > 0, (40, 255, 40), thick)
        return out

    def cloth() -> np.ndarray:
        rgb, _, bad = _rgb(sample, "cloth.jpg", w, h)
        if rgb is None:
            return _note(w, h, bad or "")
        small = _fit(rgb, w, h)
        mask, _ = _decode(sample, "cloth_mask.png")
        if mask is None:
            return small
        inside = _fit(mask.astype(np.uint8), w, h, nearest=True) > 0
        dimmed = _blend(small, np.zeros_like(small), ~inside, 0.6)  # outside the mask darkened
        return _outline(dimmed, inside, (255, 0, 255), thick)

    def agn() -> np.ndarray:
        rgb, _, bad = _rgb(sample, "agn.jpg", w, h)
        return _fit(rgb, w, h) if rgb is not None else _note(w, h, bad or "")

    draw = {
        0: lambda: on_photo("pose.json", lambda pose: _skeleton(photo, pose, scale, thick)),
        1: lambda: on_photo("parse.png", parse),
        2: densepose,
        3: lambda: on_photo("agn_mask.png", masks),
        4: agn,
        5: cloth,
    }
    return [draw[i]() for i in which]


def parse_legend(width: int, size: int = 15) -> Image.Image:
    """The CIHP colours of the parse panel with their label names (background left out), wrapped to ``width``."""
    f = font(size)
    gap, box = size // 2, size
    items = [(name, tuple(int(c) for c in _PALETTE[i])) for i, name in enumerate(CIHP_LABELS) if i]
    x, y, placed = gap, gap, []
    for name, colour in items:
        w = box + 4 + int(f.getlength(name)) + 2 * gap
        if x + w > width and x > gap:
            x, y = gap, y + size + gap
        placed.append((x, y, name, colour))
        x += w
    img = Image.new("RGB", (width, y + size + gap), _BG)
    draw = ImageDraw.Draw(img)
    for x, y, name, colour in placed:
        draw.rectangle((x, y + 2, x + box, y + box), fill=colour, outline=(200, 200, 200))
        draw.text((x + box + 4, y), name, font=f, fill=_PLAIN)
    return img


def closest_text(rec: SampleRecord) -> str:
    """For a passed sample with a known margin, which check came closest to its threshold and how close."""
    if rec.margin is None or rec.closest is None or rec.margin < 0:
        return ""
    return f" (closest: {text(rec.closest, 60)}, {rec.margin:.0%} from its threshold)"


def caption_lines(rec: SampleRecord, width_chars: int) -> list[tuple[str, tuple[int, int, int]]]:
    """The row label: key, category, pair (and approximate maps), then each flag as "check: reason" wrapped."""
    head = f"{rec.key}   {rec.category}   {rec.split}/{rec.pair}"
    if rec.approximate:  # the maps drawn here; the producers table lists the rest
        main = [m for m in rec.approximate if m in PRODUCER_FIELDS]
        more = len(rec.approximate) - len(main)
        head += f"   approximate: {', '.join(main) or '-'}" + (f" (+{more} derived)" if more else "")
    lines = [(text(head, 300), _PLAIN)]
    if rec.quality is None:
        lines.append(("quality: unchecked", _UNCHECKED))
    elif not rec.quality.flags:
        lines.append((f"quality: passed{closest_text(rec)}", _PASSED))
    for check, reason in rec.quality.flags if rec.quality is not None else ():
        wrapped = textwrap.wrap(f"FLAG {text(check, 60)}: {text(reason, 400)}", width_chars) or [""]
        lines += [(ln, _FLAG) for ln in wrapped]
    return lines


def sample_row(sample: Sample, rec: SampleRecord, h: int, which: tuple[int, ...] | None = None) -> Image.Image:
    """One sample as an image: the label band (key, category, pair, flags), panel titles, then the panels."""
    which = tuple(range(len(PANELS))) if which is None else which
    w, gap = h * 3 // 4, max(2, h // 128)
    width = len(which) * (w + gap) + gap
    size = max(14, h // 22)
    f = font(size)
    line_h = size + size // 3
    lines = caption_lines(rec, max(20, int(width / (size * 0.55))))
    title_h = line_h
    band = gap + len(lines) * line_h + title_h
    row = Image.new("RGB", (width, band + h + gap), _BG)
    draw = ImageDraw.Draw(row)
    for i, (ln, colour) in enumerate(lines):
        draw.text((gap + 4, gap + i * line_h), ln, font=f, fill=colour)
    small = font(max(12, size - 3))
    for c, (idx, panel) in enumerate(zip(which, panels(sample, h, which), strict=True)):
        x = gap + c * (w + gap)
        draw.text((x + 2, band - title_h + 2), PANELS[idx], font=small, fill=(200, 200, 200))
        row.paste(Image.fromarray(panel), (x, band))
    return row
