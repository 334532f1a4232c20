"""`vitonprep inspect`: a contact sheet of samples with every map side by side, and a text summary."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from vitonprep import codecs
from vitonprep.schema import FIELDS, Kind
from vitonprep.shards import Sample, iter_tar_samples, list_shards

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


def _to_rgb(name: str, value: Any) -> np.ndarray:
    from vitonprep.derive.labels import CIHP_PALETTE

    f = next(f for f in FIELDS if f.name == name)
    if f.kind is Kind.RGB:
        return value
    if f.kind is Kind.MASK:
        return np.repeat(value[..., None].astype(np.uint8) * 255, 3, axis=2)
    if f.kind is Kind.LABELS:
        pal = np.asarray(CIHP_PALETTE, np.uint8).reshape(-1, 3)
        return pal[value]
    raise ValueError(name)


def _tile(sample: Sample, name: str, tile_w: int, tile_h: int) -> Image.Image:
    f = next(f for f in FIELDS if f.name == name)
    data = sample.members.get(f.member)
    if data is None:
        tile = Image.new("RGB", (tile_w, tile_h), (60, 0, 0))
        ImageDraw.Draw(tile).text((4, tile_h // 2), "missing", fill=(255, 255, 255))
        return tile
    try:
        rgb = _to_rgb(name, codecs.decode_field(f, data, sample.key))
    except codecs.DecodeError:
        tile = Image.new("RGB", (tile_w, tile_h), (120, 0, 0))
        ImageDraw.Draw(tile).text((4, tile_h // 2), "undecodable", fill=(255, 255, 255))
        return tile
    return Image.fromarray(rgb).resize((tile_w, tile_h), Image.BILINEAR)


def contact_sheet(shard_dir: Path, out_png: Path, n: int = 8, tile_width: int = 144) -> InspectSummary:
    """Draw the first ``n`` samples, one row each, with the fields of SHEET_FIELDS as columns."""
    tile_w, tile_h = tile_width, tile_width * 4 // 3
    label_h, margin = 16, 2
    summary = InspectSummary()
    rows: list[tuple[Sample, dict[str, Any]]] = []
    for tar_path in list_shards(shard_dir):
        for sample in iter_tar_samples(tar_path):
            meta = codecs.decode_json(sample.members.get("meta.json", b"{}"), sample.key)
            summary.nsamples += 1
            summary.keys.append(sample.key)
            summary.categories[meta.get("category")] += 1
            summary.pairs[f"{meta.get('split')}/{meta.get('pair')}"] += 1
            summary.sizes[tuple(meta.get("size") or ())] += 1
            for fname, prod in (meta.get("producers") or {}).items():
                summary.producers[(fname, prod.get("backend"), bool(prod.get("approximate")))] += 1
            if len(rows) < n:
                rows.append((sample, meta))
    cols = len(SHEET_FIELDS)
    width = cols * (tile_w + margin) + margin
    height = label_h + len(rows) * (tile_h + label_h + margin) + margin
    sheet = Image.new("RGB", (width, max(height, label_h + 1)), (32, 32, 32))
    draw = ImageDraw.Draw(sheet)
    for c, name in enumerate(SHEET_FIELDS):
        draw.text((margin + c * (tile_w + margin) + 2, 2), name, fill=(255, 255, 255))
    for r, (sample, meta) in enumerate(rows):
        y = label_h + r * (tile_h + label_h + margin)
        approx = [k for k, p in (meta.get("producers") or {}).items() if p.get("approximate")]
        caption = f"{sample.key}  {meta.get('split')}/{meta.get('pair')}  {meta.get('category')}"
        if approx:
            caption += f"  APPROXIMATE: {', '.join(approx)}"
        draw.text((margin + 2, y + 2), caption, fill=(255, 220, 120) if approx else (200, 200, 200))
        for c, name in enumerate(SHEET_FIELDS):
            sheet.paste(_tile(sample, name, tile_w, tile_h), (margin + c * (tile_w + margin), y + label_h))
    out_png.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out_png)
    logger.info("contact sheet of %d samples written to %s", len(rows), out_png)
    return summary
