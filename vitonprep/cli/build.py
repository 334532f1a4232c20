"""`vitonprep build RAW OUT`."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from vitonprep.cli._common import console, fail, progress_bar
from vitonprep.errors import ConfigError


def build(
    raw: Annotated[Path, typer.Argument(help="Raw photos: person/ and cloth/ folders (pairs from pairs.txt or "
                                              "shared file stems), or a flat folder of person photos.")],
    out: Annotated[Path, typer.Argument(help="Output folder for shards, stats, manifest and contact sheet.")],
    pipeline: Annotated[str, typer.Option("--pipeline", "-p", help="Pipeline YAML file, or the name of one in "
                                                                   "pipelines/.")] = "default",
    workers: Annotated[int, typer.Option("--workers", "-j", min=1, help="Worker processes (one shard each).")] = 1,
    pairs: Annotated[Path | None, typer.Option(help="Pairs file: lines 'person_file cloth_file'.")] = None,
    category: Annotated[str | None, typer.Option(help="upper_body | lower_body | dresses "
                                                      "(overrides the pipeline).")] = None,
    split: Annotated[str | None, typer.Option(help="train | test (overrides the pipeline).")] = None,
    samples_per_shard: Annotated[int | None, typer.Option(min=1, help="Overrides the pipeline.")] = None,
    export_vitonhd: Annotated[Path | None, typer.Option("--export-vitonhd", help="Also write the VITON-HD "
                                                                                 "folder layout here.")] = None,
    sheet: Annotated[int, typer.Option(help="Samples on the contact sheet (0: none).")] = 8,
    strict: Annotated[bool, typer.Option(help="Exit 1 if any sample failed.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Delete OUT first instead of resuming into it.")] = False,
) -> None:
    """Turn raw person and garment photos into validated VITON-HD-style shards, offline.

    Pose (BODY_25 + face + hands), person checks, CIHP parsing, DensePose-style image, cloth mask, agnostic
    image and mask, parse-agnostic and gt_cloth_warped_mask per sample. Approximate maps are marked in each
    meta.json. A rerun resumes; bad inputs are recorded (file, stage, reason) and the run goes on.
    Exit 0 if usable samples were made and they validate (with --strict: and nothing failed).
    """
    from vitonprep.build import BuildOptions, build_dataset
    from vitonprep.config import load_pipeline_config
    from vitonprep.inspect import contact_sheet
    from vitonprep.validate import validate_shards

    overrides = {k: v for k, v in (("category", category), ("split", split),
                                   ("samples_per_shard", samples_per_shard)) if v is not None}
    try:
        cfg = load_pipeline_config(pipeline, overrides)
    except ConfigError as exc:
        raise fail(str(exc))
    if overwrite and out.exists():
        shutil.rmtree(out)
    with progress_bar() as progress:
        task = progress.add_task(f"build ({cfg.name})", total=None, info="")
        state = {"samples": 0, "failures": 0}
        import time

        t0 = time.perf_counter()

        def on_shard(result, done, total):
            state["samples"] += result.nsamples
            state["failures"] += len(result.failures)
            rate = state["samples"] / max(time.perf_counter() - t0, 1e-9)
            progress.update(task, completed=done, total=total,
                            info=f"{state['samples']} samples, {state['failures']} failures, {rate:.2f} samples/s")

        try:
            report = build_dataset(cfg, raw, out, BuildOptions(workers=workers, pairs_file=pairs, strict=strict),
                                   progress=on_shard)
        except ConfigError as exc:
            raise fail(str(exc))
    table = Table(title=f"build {raw} -> {out}")
    for col in ("planned", "samples", "failed", "shards", "resumed", "seconds", "samples/s"):
        table.add_column(col, justify="right")
    table.add_row(str(report.nplanned), str(report.nsamples), str(len(report.failures)), str(report.nshards),
                  str(report.skipped_shards), f"{report.seconds:.1f}",
                  f"{report.nsamples / max(report.seconds, 1e-9):.2f}")
    console.print(table)
    if report.failures:
        ft = Table(title="failures (also in the *_stats.json files)")
        for col in ("file", "stage", "reason"):
            ft.add_column(col)
        for f in report.failures[:30]:
            ft.add_row(f.source, f.stage, f.reason)
        console.print(ft)
    if report.unused_garments:
        console.print(f"{len(report.unused_garments)} garment photos are not paired with a person")
    if report.nsamples == 0:
        console.print("[red]no usable sample was made[/]")
        raise typer.Exit(1)
    rep = validate_shards(out)
    console.print(f"validate: {rep.nsamples} samples, {len(rep.errors)} errors, {len(rep.warnings)} warnings -> "
                  + ("[green]sound[/]" if rep.ok else "[red]NOT SOUND[/]"))
    for issue in rep.errors[:10]:
        console.print(f"  [red]{issue.key}[/]: {issue.message}")
    if sheet:
        contact_sheet(out, out / "contact_sheet.png", n=sheet)
        console.print(f"contact sheet: {out / 'contact_sheet.png'}")
    if export_vitonhd:
        from vitonprep.export import export_vitonhd as do_export

        exp = do_export(out, export_vitonhd)
        console.print(f"exported {exp.nsamples} samples to {export_vitonhd}")
    if not rep.ok or (strict and report.failures):
        raise typer.Exit(1)
