"""`vitonprep export SHARDS DIR --format vitonhd|idm-vton|dresscode|tryondiffusion`."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer

from vitonprep.cli._common import console, fail, require_dir
from vitonprep.codecs import DecodeError
from vitonprep.export import export_dataset


class ExportFormat(str, enum.Enum):
    vitonhd = "vitonhd"
    idm_vton = "idm-vton"
    dresscode = "dresscode"
    tryondiffusion = "tryondiffusion"


def export(
    shards: Annotated[Path, typer.Argument(help="Folder of .tar shards.")],
    out: Annotated[Path, typer.Argument(help="Destination root.")],
    format: Annotated[ExportFormat, typer.Option("--format", help="Folder layout to write.")] = ExportFormat.vitonhd,
    shards_out: Annotated[bool, typer.Option("--shards", help="tryondiffusion: one WebDataset tar per split and "
                                             "resolution instead of files.")] = False,
) -> None:
    """Write the shards back as folders: VITON-HD v3 (StableVITON), IDM-VTON (+ tagged JSON), DressCode, or
    TryOnDiffusion inputs at 128 and 256. docs/exports.md names the loader each layout was checked against."""
    require_dir(shards, "shard folder")
    try:
        report = export_dataset(format.value, shards, out, as_shards=shards_out)
    except (ValueError, DecodeError) as exc:
        raise fail(str(exc), 1)
    console.print(f"exported {report.nsamples} samples ({report.nfiles} files, {format.value}) to {out}")
    for name, lines in report.pairs.items():
        console.print(f"  {name}: {len(lines)} lines")
    for name, value in report.notes.items():
        console.print(f"  {name}: {value}")
    if report.nsamples == 0:
        raise typer.Exit(1)
