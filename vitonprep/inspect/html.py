"""`vitonprep inspect SHARDS --html DIR`: a static report of every sample, opened from disk (no server).

``DIR/index.html`` holds a gallery (one tile per sample, flagged first: an overlay thumbnail, key, category, pair,
producers and the flagged reasons; a click shows the full-size overlays), filters by flag, category, producer and
pair that also read the URL hash (``index.html#flag=left_right&category=upper_body``), and the build's failures
read from the ``*_stats.json`` files (and ``manifest.json``'s skipped inputs) next to the shards.

Shard data is untrusted: every text taken from it is HTML-escaped, the images are named by their position in the
listing (``thumbs/00001.jpg``, ``full/00001.jpg``), never by a key, and every path is checked to stay inside DIR.
DIR must be new, empty or an earlier report (recognised by its marker file, its ``thumbs``/``full`` holding only
images), and must not be or hold the shard folder: anything else is refused before a file is removed.
"""

from __future__ import annotations

import html
import io
import json
import logging
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vitonprep.derive.labels import CIHP_LABELS, CIHP_PALETTE
from vitonprep.errors import ConfigError
from vitonprep.inspect.collect import (
    PRODUCER_FIELDS,
    InspectSummary,
    MarginFn,
    SampleRecord,
    collect,
    iter_selected,
    text,
)
from vitonprep.inspect.overlays import THUMB_PANELS, closest_text, panels, sample_row
from vitonprep.inspect.page import render_page
from vitonprep.outdir import relation
from vitonprep.safepaths import write_atomic
from vitonprep.schema import safe_path
from vitonprep.validate import validate_sample

logger = logging.getLogger(__name__)

#: the file that marks a folder as an inspect report (an earlier report may be replaced, nothing else)
MARKER = ".vitonprep-report"
_OURS = ("index.html", "thumbs", "full", MARKER)
_STATS = re.compile(r"^\d{5}_stats\.json\Z")
#: what an earlier report's thumbs/ and full/ may hold: its images and a killed run's temp files
_IMAGE = re.compile(r"^(\d{5}\.jpg|\.\d{5}\.jpg\..*\.partial)\Z")
#: thumbnails beyond this many tiles load when scrolled to (a large dataset's page stays light)
_EAGER_TILES = 120
PALETTE = np.asarray(CIHP_PALETTE, np.uint8).reshape(-1, 3)


@dataclass
class Report:
    index: Path
    nsamples: int
    #: build failures: {shard, key, source, stage, reason} texts
    failures: list[dict[str, str]] = field(default_factory=list)
    #: (file, key or None, reason): what could not be read (shards, stats files, quality fields)
    problems: list[tuple[str, str | None, str]] = field(default_factory=list)


def _image_folder(folder: Path) -> bool:
    """Whether ``folder`` (an earlier report's ``thumbs`` or ``full``) holds only what a report writes there:
    ``NNNNN.jpg`` images and a killed run's temp files. Anything else (a shard, a subfolder) keeps it."""
    return all(_IMAGE.match(p.name) and (p.is_symlink() or p.is_file()) for p in folder.iterdir())


def prepare_dir(out_dir: Path, shard_dir: Path) -> None:
    """Make ``out_dir`` ready: created when new, an earlier report's files removed; ConfigError for the shard
    folder itself or a folder holding it (clearing the report would delete the shards), a file, a link, or a
    folder holding anything else. A report folder inside the shard folder is fine (readers list only ``*.tar``)."""
    rel = relation(out_dir, shard_dir)
    if rel in ("equals", "contains"):
        raise ConfigError(f"report folder {out_dir} {rel} shard folder {shard_dir}: replacing a report there would "
                          "delete the shards; choose a separate folder")
    if out_dir.is_symlink() or (out_dir.exists() and not out_dir.is_dir()):
        raise ConfigError(f"report folder {out_dir} is a file or a link; choose a new folder")
    if out_dir.is_dir():
        names = {p.name for p in out_dir.iterdir()}
        if names and MARKER not in names:
            raise ConfigError(f"report folder {out_dir} holds files that are not an inspect report; "
                              "choose a new or empty folder")
        partial = {n for n in names if n.startswith(".") and n.endswith(".partial")}  # a killed run's temp files
        if names - set(_OURS) - partial:
            raise ConfigError(f"report folder {out_dir} holds files an inspect report never writes: "
                              f"{sorted(names - set(_OURS) - partial)[:5]}; choose a new or empty folder")
        # a marker file proves nothing about thumbs/ and full/: a folder put there (shards copied in) is refused
        # before anything is removed
        for sub in ("thumbs", "full"):
            p = out_dir / sub
            if p.is_dir() and not p.is_symlink() and not _image_folder(p):
                raise ConfigError(f"report folder {out_dir}: {p} holds files an inspect report never writes "
                                  "(only NNNNN.jpg images); choose a new or empty folder")
        for name in (*_OURS, *sorted(partial)):
            p = out_dir / name
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            elif p.exists() or p.is_symlink():
                p.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MARKER).write_text("vitonprep inspect report\n")
    for sub in ("thumbs", "full"):
        (out_dir / sub).mkdir()


def read_failures(shard_dir: Path) -> tuple[list[dict[str, str]], list[tuple[str, str | None, str]]]:
    """The failures recorded in ``*_stats.json`` and manifest.json's skipped inputs, as texts; malformed files
    and entries become problems."""
    failures: list[dict[str, str]] = []
    problems: list[tuple[str, str | None, str]] = []

    def add(origin: str, entries: Any, where: str) -> None:
        if not isinstance(entries, list):
            problems.append((origin, None, f"{where} is not a list"))
            return
        for e in entries:
            if not isinstance(e, dict):
                problems.append((origin, None, f"an entry of {where} is not an object"))
                continue
            failures.append({"shard": origin, **{k: text(e.get(k, ""), 500) if e.get(k) is not None else ""
                                                  for k in ("key", "source", "stage", "reason")}})

    for path in sorted(p for p in shard_dir.iterdir() if _STATS.match(p.name) and p.is_file()):
        try:
            stats = json.loads(path.read_bytes())
        except (ValueError, UnicodeDecodeError, OSError, RecursionError) as exc:  # RecursionError: nested too deep
            problems.append((path.name, None, f"{path.name} is not readable JSON: {exc}"))
            continue
        if not isinstance(stats, dict):
            problems.append((path.name, None, f"{path.name} is not an object"))
            continue
        add(path.name, stats.get("failures", []), f"{path.name} failures")
    manifest = shard_dir / "manifest.json"
    if manifest.is_file():
        try:
            info = json.loads(manifest.read_bytes())
        except (ValueError, UnicodeDecodeError, OSError, RecursionError) as exc:
            problems.append(("manifest.json", None, f"manifest.json is not readable JSON: {exc}"))
            info = {}
        own = info.get("vitonprep") if isinstance(info, dict) else None
        if isinstance(own, dict) and "skipped_inputs" in own:
            add("manifest.json", own["skipped_inputs"], "manifest.json skipped_inputs")
    return failures, problems


def _jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _attr(values: list[str]) -> str:
    """A space-separated attribute list; the items become tokens, so spaces inside one are replaced."""
    return html.escape(" ".join(v.replace(" ", "_") for v in values), quote=True)


def _tile(i: int, rec: SampleRecord, thumb: str, full: str, eager: bool) -> str:
    e = html.escape
    lazy = "" if eager else ' loading="lazy"'
    flags = [c for c, _ in rec.quality.flags] if rec.quality is not None else []
    producers = [f"{k}:{v}" for k, v in rec.producers.items() if k in PRODUCER_FIELDS]
    reasons = "".join(f"<li><b>{e(text(c, 60))}</b>: {e(text(r, 400))}</li>"
                      for c, r in (rec.quality.flags if rec.quality is not None else ()))
    status = {"flagged": f"{len(flags)} flag{'s' * (len(flags) != 1)}", "passed": "passed" + closest_text(rec),
              "unchecked": "unchecked"}[rec.status]
    return (f'<figure class="tile {rec.status}" data-status="{rec.status}" data-flags="{_attr(flags)}" '
            f'data-category="{_attr([rec.category])}" data-producers="{_attr(producers)}" '
            f'data-pair="{_attr([rec.pair])}" data-index="{i}">'
            f'<a href="{full}" class="open"><img src="{thumb}" alt="overlays of sample {i}"{lazy}></a>'
            f'<figcaption><div class="key">{e(rec.key)}</div>'
            f'<div class="meta">{e(rec.category)} &middot; {e(rec.split)}/{e(rec.pair)} &middot; '
            f'<span class="status">{e(status)}</span></div>'
            f'<div class="prod">{e(", ".join(producers))}</div>'
            f'<ul class="reasons">{reasons}</ul></figcaption></figure>')


def _options(name: str, counts: dict[str, int], first: list[tuple[str, str]]) -> str:
    opts = "".join(f'<option value="{html.escape(v, quote=True)}">{html.escape(label)}</option>' for v, label in first)
    opts += "".join(f'<option value="{html.escape(k.replace(" ", "_"), quote=True)}">{html.escape(k)} ({n})</option>'
                    for k, n in sorted(counts.items()))
    return f'<label>{name} <select id="f-{name}" data-filter="{name}">{opts}</select></label>'


def _legend() -> str:
    """The parse panel's colours (our constants, not shard data) and the other overlays' meaning."""
    swatches = "".join(f'<span class="sw"><i style="background:rgb{tuple(int(c) for c in PALETTE[i])}"></i>'
                       f"{html.escape(name)}</span>" for i, name in enumerate(CIHP_LABELS) if i)
    return (f'<div class="legend">parse: {swatches}<br>pose: person\'s right limbs red, left limbs blue; masks: '
            "agn_mask red, gt_cloth_warped_mask green outline, cloth_mask magenta outline</div>")


def _page(summary: InspectSummary, tiles: list[str], report: Report, shard_dir: Path) -> str:
    e = html.escape
    producers: dict[str, int] = {}
    for rec in summary.records:
        for k, v in rec.producers.items():
            if k in PRODUCER_FIELDS:
                producers[f"{k}:{v}"] = producers.get(f"{k}:{v}", 0) + 1
    pairs: dict[str, int] = {}
    for rec in summary.records:
        pairs[rec.pair] = pairs.get(rec.pair, 0) + 1
    filters = "".join([
        _options("flag", dict(summary.flag_counts),
                 [("", "all samples"), ("any", f"any flag ({summary.flagged})"),
                  ("passed", f"passed ({summary.passed})"), ("unchecked", f"unchecked ({summary.unchecked})")]),
        _options("category", dict(summary.categories), [("", "all")]),
        _options("producer", producers, [("", "all")]),
        _options("pair", pairs, [("", "all")]),
    ])
    rows = "".join(f"<tr><td>{e(f['shard'])}</td><td>{e(f['key'])}</td><td>{e(f['source'])}</td>"
                   f"<td>{e(f['stage'])}</td><td>{e(f['reason'])}</td></tr>" for f in report.failures)
    failures = (f"<table><tr><th>file</th><th>key</th><th>source</th><th>stage</th><th>reason</th></tr>{rows}"
                "</table>" if rows else "<p>No failure recorded.</p>")
    problems = "".join(f"<li>{e(s)} {e(k or '')}: {e(r)}</li>" for s, k, r in report.problems)
    counts = (f"{summary.nsamples} samples: {summary.flagged} flagged, {summary.passed} passed, "
              f"{summary.unchecked} unchecked; {len(report.failures)} build failures")
    return render_page(
        legend=_legend(),
        title=e(f"vitonprep inspect: {text(shard_dir.name)}"), counts=e(counts), filters=filters,
        tiles="\n".join(tiles), failures=failures,
        problems=f"<h2>Problems reading the shards</h2><ul>{problems}</ul>" if problems else "")


def write_report(shard_dir: Path, out_dir: Path, tile_height: int = 384, thumb_height: int = 240,
                 margin: MarginFn | None = None) -> Report:
    """Write the report of every sample of ``shard_dir`` into ``out_dir`` (see the module docstring)."""
    prepare_dir(out_dir, shard_dir)
    summary = collect(shard_dir, margin)
    report = Report(out_dir / "index.html", summary.nsamples, problems=list(summary.problems))
    report.failures, bad = read_failures(shard_dir)
    report.problems += bad
    number = {id(rec): i for i, rec in enumerate(summary.records, 1)}
    for rec, sample in iter_selected(shard_dir, summary.records):
        n = f"{number[id(rec)]:05d}"
        report.problems += [(rec.shard, rec.key, i.message)
                            for i in validate_sample(sample, rec.shard) if i.level == "error"]
        write_atomic(safe_path(out_dir, "full/{n}.jpg", n=n), _jpeg(sample_row(sample, rec, tile_height), 88))
        write_atomic(safe_path(out_dir, "thumbs/{n}.jpg", n=n),
                     _jpeg(Image.fromarray(np.hstack(panels(sample, thumb_height, THUMB_PANELS))), 82))
    tiles = [_tile(i, rec, f"thumbs/{i:05d}.jpg", f"full/{i:05d}.jpg", i <= _EAGER_TILES)
             for i, rec in enumerate(summary.records, 1)]
    write_atomic(safe_path(out_dir, "index.html"), _page(summary, tiles, report, shard_dir).encode())
    logger.info("HTML report of %d samples written to %s", summary.nsamples, report.index)
    return report
