"""`vitonprep inspect`: contact sheets of overlays, flagged samples first, paged through every sample.

Shards are untrusted: a shard that cannot be read to its end, a meta.json that is not an object, a ``quality``
field of the wrong shape, and whatever validate finds wrong with a drawn sample become ``problems`` (shard, key,
reason) instead of exceptions; the sheets are drawn from what could be read. Nothing is named from shard data: the
files written are the sheets, named from ``out_png`` and the page number.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from vitonprep import codecs
from vitonprep.errors import ConfigError
from vitonprep.inspect.collect import InspectSummary, MarginFn, SampleRecord, collect, iter_selected
from vitonprep.inspect.overlays import font, parse_legend, sample_row
from vitonprep.safepaths import write_atomic
from vitonprep.validate import validate_sample

logger = logging.getLogger(__name__)

#: rows rendered between two reads of the shards when every page is drawn (bounds memory: ~2.5 MB a row at 384 px)
_ROWS_PER_PASS = 64


def page_count(nsamples: int, rows: int) -> int:
    return max(1, -(-nsamples // rows))


def page_path(out_png: Path, page: int) -> Path:
    """``contact_sheet.png`` -> ``contact_sheet_001.png`` (the ``--all`` sheets)."""
    return out_png.with_name(f"{out_png.stem}_{page:03d}{out_png.suffix or '.png'}")


def _render(shard_dir: Path, records: list[SampleRecord], tile_height: int,
            summary: InspectSummary) -> dict[int, Image.Image]:
    """id(record) -> its row image; each drawn sample is validated too (errors become problems)."""
    rows: dict[int, Image.Image] = {}
    for rec, sample in iter_selected(shard_dir, records):
        summary.problems += [(rec.shard, rec.key, i.message)
                             for i in validate_sample(sample, rec.shard) if i.level == "error"]
        rows[id(rec)] = sample_row(sample, rec, tile_height)
    return rows


def _save(rows: list[Image.Image], header: str, out_png: Path) -> None:
    f = font(18)
    width = max([r.width for r in rows] + [900])
    legend = parse_legend(width)
    top = 30 + legend.height
    sheet = Image.new("RGB", (width, top + sum(r.height for r in rows)), (12, 12, 12))
    ImageDraw.Draw(sheet).text((8, 6), header, font=f, fill=(255, 255, 255))
    sheet.paste(legend, (0, 30))
    y = top
    for r in rows:
        sheet.paste(r, (0, y))
        y += r.height
    out_png.parent.mkdir(parents=True, exist_ok=True)
    # the shards' PNG encoder: 5x faster than PIL's on a sheet of photos, for a file 7 % larger; write_atomic
    # replaces a link planted at the sheet's name instead of writing through it
    write_atomic(out_png, codecs.encode_png_rgb(np.asarray(sheet)))


def contact_sheet(shard_dir: Path, out_png: Path, n: int = 8, page: int = 1, all_pages: bool = False,
                  tile_height: int = 384, margin: MarginFn | None = None) -> InspectSummary:
    """Draw ``n`` samples per sheet, one row of overlays each, flagged samples first (``collect`` orders them).

    One sheet, page ``page`` (1-based), at ``out_png``; with ``all_pages`` every page, at :func:`page_path`.
    ``summary.pages`` lists the sheets written and their keys. ConfigError for a page past the last.
    """
    summary = collect(shard_dir, margin)
    total = len(summary.records)
    npages = page_count(total, n)
    if not 1 <= page <= npages:
        raise ConfigError(f"page {page} does not exist: {total} samples make {npages} pages of {n} rows")
    wanted = range(1, npages + 1) if all_pages else [page]
    per_pass = max(1, _ROWS_PER_PASS // n)
    for start in range(0, len(wanted), per_pass):
        batch = list(wanted[start:start + per_pass])
        chosen = {p: summary.records[(p - 1) * n:p * n] for p in batch}
        rows = _render(shard_dir, [r for p in batch for r in chosen[p]], tile_height, summary)
        for p in batch:
            recs = chosen[p]
            path = page_path(out_png, p) if all_pages else out_png
            first = (p - 1) * n + 1
            header = (f"page {p}/{npages}: samples {first}-{first + len(recs) - 1} of {total} "
                      f"(flagged first: {summary.flagged} flagged, {summary.passed} passed, "
                      f"{summary.unchecked} unchecked)" if recs else f"{total} samples")
            _save([rows[id(r)] for r in recs if id(r) in rows], header, path)
            summary.pages.append((path, [r.key for r in recs]))
            logger.info("contact sheet of %d samples written to %s", len(recs), path)
    return summary
