"""`vitonprep export SHARDS DIR`."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer

from vitonprep.cli._common import console, fail, require_dir
from vitonprep.export import export_vitonhd


class ExportFormat(str, enum.Enum):
    vitonhd = "vitonhd"


def export(
    shards: Annotated[Path, typer.Argument(help="Folder of .tar shards.")],
    out: Annotated[Path, typer.Argument(help="Destination root (train/ and test/ are made inside).")],
    format: Annotated[ExportFormat, typer.Option("--format", help="Folder layout to write.")] = ExportFormat.vitonhd,
) -> None:
    """Write the shards back as folders: VITON-HD v3 names as the official StableVITON loader reads them."""
    require_dir(shards, "shard folder")
    try:
        report = export_vitonhd(shards, out)
    except ValueError as exc:
        raise fail(str(exc), 1)
    console.print(f"exported {report.nsamples} samples ({report.nfiles} files) to {out}")
    for split, lines in report.pairs.items():
        console.print(f"  {split}_pairs.txt: {len(lines)} lines")
    if report.nsamples == 0:
        raise typer.Exit(1)
