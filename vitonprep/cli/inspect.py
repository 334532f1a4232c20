"""`vitonprep inspect SHARDS`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from vitonprep.cli._common import console, require_dir
from vitonprep.inspect import contact_sheet


def inspect(
    shards: Annotated[Path, typer.Argument(help="Folder of .tar shards.")],
    out: Annotated[Path | None, typer.Option(help="Contact sheet PNG (default: SHARDS/contact_sheet.png).")] = None,
    n: Annotated[int, typer.Option("-n", min=1, help="Samples (rows) on the sheet.")] = 8,
    tile_width: Annotated[int, typer.Option(min=32, help="Width of one tile in pixels.")] = 144,
) -> None:
    """Draw a contact sheet (one row per sample, every map side by side) and summarise the dataset."""
    require_dir(shards, "shard folder")
    out_png = out or shards / "contact_sheet.png"
    summary = contact_sheet(shards, out_png, n=n, tile_width=tile_width)
    console.print(f"{summary.nsamples} samples; split/pair {dict(summary.pairs)}; categories "
                  f"{dict(summary.categories)}; sizes {dict(summary.sizes)}")
    table = Table(title="who produced each map")
    for col in ("field", "backend", "approximate", "samples"):
        table.add_column(col)
    for (fname, backend, approx), count in sorted(summary.producers.items()):
        table.add_row(fname, backend, "[yellow]yes[/]" if approx else "no", str(count))
    console.print(table)
    console.print(f"contact sheet: {out_png}")
    if summary.nsamples == 0:
        raise typer.Exit(1)
