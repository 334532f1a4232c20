"""`vitonprep export SHARDS DIR --format vitonhd|idm-vton|dresscode|tryondiffusion`."""

from __future__ import annotations

import enum
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from vitonprep.cli._common import console, fail, require_dir
from vitonprep.errors import ConfigError
from vitonprep.export import ExportReport, export_dataset
from vitonprep.outdir import refuse_overlap

logger = logging.getLogger(__name__)


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
    keep_flagged: Annotated[bool, typer.Option(help="Export the samples the quality checks flagged too (left out "
                                                    "by default, in every format).")] = False,
    show: Annotated[int, typer.Option(help="How many refused samples to list.")] = 30,
) -> None:
    """Write the shards back as folders: VITON-HD v3 (StableVITON), IDM-VTON (+ tagged JSON), DressCode, or
    TryOnDiffusion inputs at 128 and 256. docs/exports.md names the loader each layout was checked against.

    Only samples that pass validate's checks are written, each whole or not at all, and every file lands inside
    OUT; a damaged or crafted sample or shard is refused and listed (exit 1), the others are exported. Samples
    the quality checks flagged (meta.json 'quality') are left out unless --keep-flagged; samples never checked
    are exported.

    Pair lists, every format alike: paired samples (the person wears the garment) in the training list
    (train_pairs.txt, index.json), unpaired ones (try-on inputs) only in the unpaired list
    ({split}_pairs_unpaired.txt, index_unpaired.json); one line says where they went.
    """
    require_dir(shards, "shard folder")
    try:  # as the library twin (vitonprep.api.export): the exported files would land among the shards
        refuse_overlap("OUT", out, {"SHARDS": shards}, False)
    except ConfigError as exc:
        raise fail(str(exc)) from exc
    try:
        report = export_dataset(format.value, shards, out, as_shards=shards_out, keep_flagged=keep_flagged)
    except (ValueError, OSError) as exc:  # a wrong option, an unreadable manifest, a full or read-only OUT
        logger.debug("export failed", exc_info=True)
        raise fail(f"export: {exc}", 1) from exc
    console.print(escape(f"exported {report.nsamples} samples ({report.nfiles} files, {format.value}) to {out}"))
    print_export_lines(report, out)
    for name, value in report.notes.items():
        console.print(escape(f"  {name}: {value}"))
    if report.flagged:
        console.print(escape(f"left out {len(report.flagged)} flagged samples: see vitonprep quality / inspect "
                             "(--keep-flagged exports them)"), style="yellow")
    if report.refused:
        console.print(f"[red]refused {len(report.refused)}[/] (not exported):")
        for r in report.refused[:show]:
            console.print(escape(f"  {r.shard} {r.key or '(whole shard)'}: {r.reason}"))
    if report.nsamples == 0 or report.refused:
        raise typer.Exit(1)


def pairs_line(report: ExportReport) -> str:
    """The one line on where the exported samples' pairs went (the rule is in vitonprep.export.common)."""
    parts = []
    for pairing in ("paired", "unpaired"):
        n, lists = report.pairing.get(pairing, 0), report.lists.get(pairing, [])
        parts.append(f"{n} {pairing}" + (f" in {', '.join(lists)}" if n and lists else ""))
    if report.pairing.get("unpaired"):
        parts[-1] += " (the person wears another garment: try-on inputs, never in a training list)"
    if report.pairing.get("person_only"):
        parts.append(f"{report.pairing['person_only']} without garment (in no list)")
    return "pairs: " + ", ".join(parts)


def print_export_lines(report: ExportReport, out: Path) -> None:
    """The pairs line and, for formats with their own names (DressCode's numbers), where the map back is."""
    console.print(escape(pairs_line(report)), soft_wrap=True)
    if report.renamed and report.id_map:
        console.print(escape(f"renamed {report.renamed} ids to the format's numbers: the map back is "
                             f"{out / report.id_map}"), soft_wrap=True)
