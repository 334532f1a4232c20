"""`vitonprep inspect`: a contact sheet of samples with every map side by side, and a text summary.

Shards are untrusted: a shard that cannot be read to its end, a meta.json that is not an object, and whatever
validate finds wrong with a drawn sample become ``problems`` (shard, key, reason) instead of exceptions; the
sheet is drawn from what could be read. Nothing is named from shard data: the only file written is the sheet.
"""

from __future__ import annotations

import io
import logging
import tarfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from vitonprep import codecs
from vitonprep.derive.labels import CIHP_PALETTE
from vitonprep.safepaths import write_atomic
from vitonprep.schema import FIELDS, Kind
from vitonprep.shards import Sample, iter_tar_samples, list_shards
from vitonprep.validate import validate_sample

logger = logging.getLogger(__name__)

#: columns of the sheet, in reading order (person side, then garment side)
SHEET_FIELDS = ("image", "pose_render", "parse", "image_densepose", "agn", "agn_mask", "parse_agn",
                "gt_cloth_warped_mask", "cloth", "cloth_mask")


@dataclass
class InspectSummary:
    nsamples: int = 0
    keys: list[str] = field(default_factory=list)
    producers: Counter = field(default_factory=Counter)  # (field, backend, approximate) -> count
    categories: Counter = field(default_factory=Counter)
    pairs: Counter = field(default_factory=Counter)
    sizes: Counter = field(default_factory=Counter)
    #: (shard, key or None, reason) for everything that could not be read or is not sound in a drawn sample
    problems: list[tuple[str, str | None, str]] = field(default_factory=list)


def _to_rgb(name: str, value: Any) -> np.ndarray:
    f = next(f for f in FIELDS if f.name == name)
    if f.kind is Kind.RGB:
        return value
    if f.kind is Kind.MASK:
        return np.repeat(value[..., None].astype(np.uint8) * 255, 3, axis=2)
    if f.kind is Kind.LABELS:
        pal = np.asarray(CIHP_PALETTE, np.uint8).reshape(-1, 3)
        if value.size and int(value.max()) >= len(pal):
            raise ValueError("labels out of range")
        return pal[value]
    raise ValueError(name)


def _note_tile(tile_w: int, tile_h: int, colour: tuple[int, int, int], text: str) -> Image.Image:
    tile = Image.new("RGB", (tile_w, tile_h), colour)
    ImageDraw.Draw(tile).text((4, tile_h // 2), text, fill=(255, 255, 255))
    return tile


def _tile(sample: Sample, name: str, tile_w: int, tile_h: int) -> Image.Image:
    f = next(f for f in FIELDS if f.name == name)
    data = sample.members.get(f.member)
    if data is None:
        return _note_tile(tile_w, tile_h, (60, 0, 0), "missing")
    try:
        rgb = _to_rgb(name, codecs.decode_field(f, data, sample.key))
    except codecs.DecodeError:
        return _note_tile(tile_w, tile_h, (120, 0, 0), "undecodable")
    except ValueError as exc:
        return _note_tile(tile_w, tile_h, (120, 0, 0), str(exc))
    return Image.fromarray(rgb).resize((tile_w, tile_h), Image.BILINEAR)


def _text(value: Any) -> str:
    """Shard data as drawable, printable ASCII (the sheet's bitmap font has nothing else)."""
    text = value if isinstance(value, str) else repr(value)
    return "".join(c if " " <= c <= "~" else "?" for c in text)[:80]


def _summarise(summary: InspectSummary, meta: dict[str, Any]) -> None:
    summary.categories[_text(meta.get("category"))] += 1
    summary.pairs[f"{_text(meta.get('split'))}/{_text(meta.get('pair'))}"] += 1
    size = meta.get("size")
    plain = isinstance(size, list) and all(isinstance(v, int) for v in size)
    summary.sizes[tuple(size) if plain else _text(size)] += 1
    producers = meta.get("producers")
    for fname, prod in (producers.items() if isinstance(producers, dict) else ()):
        if isinstance(prod, dict):
            summary.producers[(_text(fname), _text(prod.get("backend")), bool(prod.get("approximate")))] += 1


def contact_sheet(shard_dir: Path, out_png: Path, n: int = 8, tile_width: int = 144) -> InspectSummary:
    """Draw the first ``n`` samples, one row each, with the fields of SHEET_FIELDS as columns."""
    tile_w, tile_h = tile_width, tile_width * 4 // 3
    label_h, margin = 16, 2
    summary = InspectSummary()
    rows: list[tuple[Sample, dict[str, Any]]] = []
    for tar_path in list_shards(shard_dir):
        count = 0
        try:
            for sample in iter_tar_samples(tar_path):
                count += 1
                try:
                    meta = codecs.decode_json(sample.members.get("meta.json", b"{}"), f"{sample.key}.meta.json")
                except codecs.DecodeError as exc:
                    summary.problems.append((tar_path.name, sample.key, str(exc)))
                    meta = {}
                if not isinstance(meta, dict):
                    summary.problems.append((tar_path.name, sample.key, "meta.json is not an object"))
                    meta = {}
                summary.nsamples += 1
                summary.keys.append(sample.key)
                _summarise(summary, meta)
                if len(rows) < n:
                    rows.append((sample, meta))
                    summary.problems += [(tar_path.name, sample.key, i.message)
                                         for i in validate_sample(sample, tar_path.name) if i.level == "error"]
        except (tarfile.TarError, EOFError, OSError) as exc:
            summary.problems.append((tar_path.name, None,
                                     f"{tar_path.name} is truncated or corrupt after {count} samples: {exc}"))
    cols = len(SHEET_FIELDS)
    width = cols * (tile_w + margin) + margin
    height = label_h + len(rows) * (tile_h + label_h + margin) + margin
    sheet = Image.new("RGB", (width, max(height, label_h + 1)), (32, 32, 32))
    draw = ImageDraw.Draw(sheet)
    for c, name in enumerate(SHEET_FIELDS):
        draw.text((margin + c * (tile_w + margin) + 2, 2), name, fill=(255, 255, 255))
    for r, (sample, meta) in enumerate(rows):
        y = label_h + r * (tile_h + label_h + margin)
        producers = meta.get("producers")
        approx = [k for k, p in producers.items() if isinstance(p, dict) and p.get("approximate")] \
            if isinstance(producers, dict) else []
        caption = f"{_text(sample.key)}  {_text(meta.get('split'))}/{_text(meta.get('pair'))}  " \
                  f"{_text(meta.get('category'))}"
        if approx:
            caption += f"  APPROXIMATE: {', '.join(map(_text, approx))}"
        draw.text((margin + 2, y + 2), caption, fill=(255, 220, 120) if approx else (200, 200, 200))
        for c, name in enumerate(SHEET_FIELDS):
            sheet.paste(_tile(sample, name, tile_w, tile_h), (margin + c * (tile_w + margin), y + label_h))
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    out_png.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out_png, buf.getvalue())  # a link planted at the sheet's name is replaced, not written through
    logger.info("contact sheet of %d samples written to %s", len(rows), out_png)
    return summary
