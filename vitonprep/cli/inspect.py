"""`vitonprep inspect SHARDS`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from vitonprep.cli._common import console, fail, require_dir
from vitonprep.errors import ConfigError
from vitonprep.inspect import InspectSummary, contact_sheet
from vitonprep.inspect.html import prepare_dir, write_report

logger = logging.getLogger(__name__)


def _print_summary(summary: InspectSummary, show: int) -> None:
    console.print(escape(f"{summary.nsamples} samples; split/pair {dict(summary.pairs)}; categories "
                         f"{dict(summary.categories)}; sizes {dict(summary.sizes)}"))
    table = Table(title="who produced each map")
    for col in ("field", "backend", "approximate", "samples"):
        table.add_column(col)
    for (fname, backend, approx), count in sorted(summary.producers.items()):
        table.add_row(escape(fname), escape(backend), "[yellow]yes[/]" if approx else "no", str(count))
    console.print(table)
    quality = Table(title="quality flags per check")
    quality.add_column("check")
    quality.add_column("samples", justify="right")
    for check, count in sorted(summary.flag_counts.items()):
        quality.add_row(escape(check), str(count))
    quality.add_section()
    quality.add_row("flagged", str(summary.flagged))
    quality.add_row("passed", str(summary.passed))
    quality.add_row("unchecked", str(summary.unchecked))
    console.print(quality)
    if summary.problems:
        console.print(f"[red]{len(summary.problems)} problems[/] (vitonprep validate checks everything):")
        for shard, key, reason in summary.problems[:show]:
            console.print(escape(f"  {shard} {key or ''}: {reason}"))


def inspect(
    shards: Annotated[Path, typer.Argument(help="Folder of .tar shards.")],
    out: Annotated[Path | None, typer.Option(help="Contact sheet PNG (default: SHARDS/contact_sheet.png).")] = None,
    rows: Annotated[int, typer.Option("--rows", "-n", min=1, help="Samples (rows) per sheet.")] = 8,
    page: Annotated[int, typer.Option(min=1, help="Which sheet: samples are ordered flagged first.")] = 1,
    all_pages: Annotated[bool, typer.Option("--all", help="Every sheet: OUT_001.png, OUT_002.png, ...")] = False,
    tile_height: Annotated[int, typer.Option(min=128, max=1024, help="Height of one overlay in pixels.")] = 384,
    html: Annotated[Path | None, typer.Option(help="Also write a static HTML report of every sample into this "
                                                  "folder (new, empty or an earlier report); open index.html.")] = None,
    show: Annotated[int, typer.Option(help="How many problems to list.")] = 30,
) -> None:
    """Draw overlays of the samples (flagged first), summarise the dataset and its quality flags.

    Exit 1 when a shard cannot be read to its end, a meta.json or its quality field is malformed, or a drawn
    sample is not sound (the sheets are still drawn from what could be read); 2 for a page that does not exist
    or a report folder that cannot be used.
    """
    require_dir(shards, "shard folder")
    out_png = out or shards / "contact_sheet.png"
    try:
        if html is not None:  # refused before anything is written (a folder holding the shards, a foreign one)
            prepare_dir(html, shards)
        summary = contact_sheet(shards, out_png, n=rows, page=page, all_pages=all_pages, tile_height=tile_height)
        report = write_report(shards, html, tile_height=tile_height) if html is not None else None
    except ConfigError as exc:  # a page past the last, a report folder that is not ours
        raise fail(str(exc), 2) from exc
    except OSError as exc:  # a read-only dataset folder or a full disk
        logger.debug("inspect output not written", exc_info=True)
        raise fail(f"cannot write {exc.filename or out_png}: {exc.strerror or exc} (choose another --out/--html)",
                   1) from exc
    if report is not None:  # the report's own reading problems (its failures section lists them too)
        summary.problems += [p for p in report.problems if p not in summary.problems]
    _print_summary(summary, show)
    for path, keys in summary.pages:
        shown = ", ".join(keys[:4]) + (f", ... ({len(keys)} samples)" if len(keys) > 4 else "")
        console.print(escape(f"contact sheet: {path}: {shown}"))
    if report is not None:
        console.print(escape(f"HTML report: {report.index} ({report.nsamples} samples, "
                             f"{len(report.failures)} build failures)"))
    if summary.nsamples == 0 or summary.problems:
        raise typer.Exit(1)
