"""`vitonprep inspect SHARDS`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from vitonprep.cli._common import console, fail, require_dir
from vitonprep.inspect import contact_sheet

logger = logging.getLogger(__name__)


def inspect(
    shards: Annotated[Path, typer.Argument(help="Folder of .tar shards.")],
    out: Annotated[Path | None, typer.Option(help="Contact sheet PNG (default: SHARDS/contact_sheet.png).")] = None,
    n: Annotated[int, typer.Option("-n", min=1, help="Samples (rows) on the sheet.")] = 8,
    tile_width: Annotated[int, typer.Option(min=32, help="Width of one tile in pixels.")] = 144,
    show: Annotated[int, typer.Option(help="How many problems to list.")] = 30,
) -> None:
    """Draw a contact sheet (one row per sample, every map side by side) and summarise the dataset.

    Exit 1 when a shard cannot be read to its end, a meta.json is not an object, or a drawn sample is not sound
    (the sheet is still drawn from what could be read).
    """
    require_dir(shards, "shard folder")
    out_png = out or shards / "contact_sheet.png"
    try:
        summary = contact_sheet(shards, out_png, n=n, tile_width=tile_width)
    except OSError as exc:  # a read-only dataset folder or a full disk
        logger.debug("contact sheet not written", exc_info=True)
        raise fail(f"cannot write the contact sheet {out_png}: {exc.strerror or exc} (choose another --out)",
                   1) from exc
    console.print(escape(f"{summary.nsamples} samples; split/pair {dict(summary.pairs)}; categories "
                         f"{dict(summary.categories)}; sizes {dict(summary.sizes)}"))
    table = Table(title="who produced each map")
    for col in ("field", "backend", "approximate", "samples"):
        table.add_column(col)
    for (fname, backend, approx), count in sorted(summary.producers.items()):
        table.add_row(escape(fname), escape(backend), "[yellow]yes[/]" if approx else "no", str(count))
    console.print(table)
    console.print(escape(f"contact sheet: {out_png}"))
    if summary.problems:
        console.print(f"[red]{len(summary.problems)} problems[/] (vitonprep validate checks everything):")
        for shard, key, reason in summary.problems[:show]:
            console.print(escape(f"  {shard} {key or ''}: {reason}"))
    if summary.nsamples == 0 or summary.problems:
        raise typer.Exit(1)
