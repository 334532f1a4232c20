"""`vitonprep build RAW OUT`."""

from __future__ import annotations

import enum
import json
import os
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from vitonprep.build import BuildOptions, BuildReport, build_dataset, default_workers
from vitonprep.cli._common import console, fail, progress_bar
from vitonprep.cli.export import print_export_lines
from vitonprep.codecs import DecodeError
from vitonprep.config import PipelineConfig, load_pipeline_config
from vitonprep.distribute.ray_build import cluster_workers
from vitonprep.distribute.ray_runner import import_ray
from vitonprep.errors import ConfigError
from vitonprep.export import export_vitonhd as do_export
from vitonprep.inspect import contact_sheet
from vitonprep.outdir import clear_output, output_lock, refuse_overlap
from vitonprep.validate import validate_shards


class Distributor(str, enum.Enum):
    local = "local"
    ray = "ray"


def _local_dir(location: str) -> Path | None:
    """The local folder behind OUT, or None when it is remote (s3://, gs://, memory://...)."""
    if location.startswith("file://"):
        return Path(location[len("file://"):])
    return None if "://" in location else Path(location)


def build(
    raw: Annotated[str, typer.Argument(help="Raw photos: person/ and cloth/ folders (pairs from pairs.txt or "
                                             "shared file stems), or a flat folder of person photos; or a folder "
                                             "or URL of vitonprep shards, to re-run the stages on them.")],
    out: Annotated[str, typer.Argument(help="Output folder for shards, stats, manifest and contact sheet; or an "
                                             "fsspec URL (s3://..., gs://..., file://...).")],
    pipeline: Annotated[str, typer.Option("--pipeline", "-p", help="Pipeline YAML file, or the name of one in "
                                                                   "pipelines/.")] = "default",
    workers: Annotated[int | None, typer.Option("--workers", "-j", min=1, help="Worker processes, one shard each "
                                                "(local: default the cores this process may use, at most one per "
                                                "GB of memory; ray: as many as the cluster's CPUs hold). A small "
                                                "build is cut into one shard per worker.")] = None,
    distributor: Annotated[Distributor, typer.Option(
        # help is click's plain text (rich_markup_mode=None in vitonprep.cli): "[ray]" is shown as written
        help="Where shards are made: local processes, or a Ray cluster (pip install 'vitonprep[ray]')."
    )] = Distributor.local,
    ray_address: Annotated[str | None, typer.Option(help="Ray cluster to join: auto | HOST:PORT (default: a running "
                                                         "instance, else a new local one).")] = None,
    max_shard_retry: Annotated[int, typer.Option(min=0, help="Extra attempts for a shard whose task failed or "
                                                             "whose worker process died.")] = 2,
    pairs: Annotated[Path | None, typer.Option(help="Pairs file: lines 'person_file cloth_file'.")] = None,
    category: Annotated[str | None, typer.Option(help="upper_body | lower_body | dresses "
                                                      "(overrides the pipeline).")] = None,
    split: Annotated[str | None, typer.Option(help="train | test (overrides the pipeline).")] = None,
    samples_per_shard: Annotated[int | None, typer.Option(min=1, help="Overrides the pipeline.")] = None,
    export_vitonhd: Annotated[Path | None, typer.Option("--export-vitonhd", help="Also write the VITON-HD "
                                                                                 "folder layout here.")] = None,
    sheet: Annotated[int, typer.Option(help="Samples on the contact sheet (0: none).")] = 8,
    strict: Annotated[bool, typer.Option(help="Exit 1 if any sample failed.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Delete OUT (and the --export-vitonhd folder) first instead of "
                                                 "resuming into it.")] = False,
    weights_dir: Annotated[Path | None, typer.Option("--weights-dir", help="Folder holding the weight files of "
                                                     "reference back-ends (after params.weights, before "
                                                     "$VITONPREP_WEIGHTS_DIR); see `vitonprep doctor`.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Also print a JSON summary on stdout (its fields are "
                                                         "listed above); everything else goes to stderr.")] = False,
) -> None:
    """Turn raw person and garment photos into validated VITON-HD-style shards, offline.

    Pose (BODY_25 + face + hands), person checks, CIHP parsing, DensePose-style image, cloth mask, agnostic
    image and mask, parse-agnostic and gt_cloth_warped_mask per sample. Approximate maps are marked in each
    meta.json. A rerun resumes; bad inputs are recorded (file, stage, reason) and the run goes on.
    `--distributor ray` makes the same shards on a Ray cluster (docs/scale-out.md). RAW may also be a folder or
    URL of vitonprep shards: their stages are re-run on the stored photos (shard-to-shard).
    Exit 0 if usable samples were made and they validate (with --strict: and nothing failed), 1 if not, 2 if
    the command is refused (a wrong option, pipeline or output folder; nothing is built).

    --json prints one object on stdout once the build has finished (exit 0 or 1): {"command": "build", "raw", "out",
    "pipeline": str, "planned", "samples", "made", "failed", "shards", "resumed_shards", "samples_per_shard":
    int, "workers": int or null, "seconds": float, "failures": [{"source", "stage", "reason", "key"}],
    "failed_shards": {shard: error}, "unused_garments": int, "quality": {"checked", "flagged", "dropped",
    "by_check"} or null, "validate": {"ok", "samples", "errors", "warnings"} or null (remote OUT), "export":
    {"samples", "files", "pairing", "lists", "flagged", "refused"} or null, "exit_code": int}.
    """
    overrides = {k: v for k, v in (("category", category), ("split", split),
                                   ("samples_per_shard", samples_per_shard),
                                   ("weights_dir", str(weights_dir) if weights_dir else None)) if v is not None}
    try:
        cfg = load_pipeline_config(pipeline, overrides)
    except ConfigError as exc:
        raise fail(str(exc)) from exc
    with ExitStack() as stack:
        try:
            _claim_outputs(stack, raw, out, export_vitonhd, overwrite,
                           {"--pairs": pairs, "--weights-dir": weights_dir,
                            "--pipeline": pipeline if Path(pipeline).is_file() else None})
        except ConfigError as exc:
            raise fail(str(exc)) from exc
        if workers is None and distributor is Distributor.ray:
            try:  # the shard workers the cluster holds, known before planning: a small build is split over them
                workers, started = cluster_workers(cfg, ray_address)
            except ConfigError as exc:
                raise fail(str(exc)) from exc
            if started:  # the build joins this instance; it ends with the command
                stack.callback(import_ray().shutdown)
        summary: dict[str, Any] = {"command": "build", "raw": raw, "out": out, "pipeline": cfg.name}
        try:
            _build_and_check(cfg, raw, out, workers, distributor, ray_address, max_shard_retry, pairs, strict,
                             export_vitonhd, sheet, summary)
        except typer.Exit as exc:
            if as_json and "samples" in summary:  # the build ran: its summary, with the exit code it ends with
                typer.echo(json.dumps({**summary, "exit_code": exc.exit_code}))
            raise
        if as_json:
            typer.echo(json.dumps({**summary, "exit_code": 0}))


def _claim_outputs(stack: ExitStack, raw: str, out: str, export_vitonhd: Path | None, overwrite: bool,
                   inputs: dict[str, Path | str | None]) -> None:
    """Refuse outputs that would write into or (with --overwrite) delete an input or each other, take OUT's lock
    for the rest of the command, then clear what --overwrite clears."""
    refuse_overlap("OUT", out, {"RAW": raw, "--export-vitonhd": export_vitonhd, **inputs}, overwrite)
    if export_vitonhd is not None:
        refuse_overlap("--export-vitonhd", export_vitonhd, {"RAW": raw, **inputs}, overwrite)
    stack.enter_context(output_lock(out))
    if overwrite:
        clear_output(out)
        if export_vitonhd is not None:
            clear_output(export_vitonhd, "export")  # an export of earlier shards would disagree with the new ones


def _print_quality(cfg: PipelineConfig, report: BuildReport) -> None:
    """Flagged samples per check, and how many the policy dropped (the counts come from the stats files)."""
    q = report.quality
    if q is None:
        console.print("quality checks: off (quality.enabled: false)")
        return
    fate = "kept, marked in meta.json" if cfg.quality.on_flag == "keep" else "dropped: listed as failures"
    console.print(f"quality: {q.checked} samples checked, {q.flagged} flagged ({fate}; on_flag: "
                  f"{cfg.quality.on_flag}), {q.dropped} dropped")
    if q.by_check:
        qt = Table(title="flagged samples per check")
        qt.add_column("check")
        qt.add_column("flagged", justify="right")
        for check, n in sorted(q.by_check.items(), key=lambda kv: (-kv[1], kv[0])):
            qt.add_row(escape(check), str(n))
        console.print(qt)


def _build_and_check(cfg: PipelineConfig, raw: str, out: str, workers: int | None, distributor: "Distributor",
                     ray_address: str | None, max_shard_retry: int, pairs: Path | None, strict: bool,
                     export_vitonhd: Path | None, sheet: int, summary: dict[str, Any]) -> None:
    """Build, then validate, draw and export what was built; ``summary`` is filled in for --json as it goes."""
    if workers is None and distributor is Distributor.local:
        workers = default_workers()
    with progress_bar() as progress:
        task = progress.add_task(f"build ({cfg.name})", total=None, info="")
        state = {"failures": 0, "resumed": 0}
        t0 = time.perf_counter()

        def on_shard(result, done, total):
            state["failures"] += len(result.failures)
            state["resumed"] += result.nsamples + len(result.failures) if result.skipped else 0

        def on_sample(done, total, this_run):
            # the rate counts only what this run processed (pairs made, failed or dropped): a resumed build's earlier
            # shards took no time here; the closing table's samples/s counts the samples written
            rate = this_run / max(time.perf_counter() - t0, 1e-9)
            resumed = f"{state['resumed']} resumed, " if state["resumed"] else ""
            progress.update(task, completed=done, total=total,
                            info=f"{resumed}{state['failures']} failures, {rate:.2f} pairs/s")

        try:
            options = BuildOptions(workers=workers, pairs_file=pairs, strict=strict, distributor=distributor.value,
                                   ray_address=ray_address, max_shard_retry=max_shard_retry)
            report = build_dataset(cfg, raw, out, options, progress=on_shard, sample_progress=on_sample)
        except ConfigError as exc:
            raise fail(str(exc)) from exc
    q = report.quality
    summary.update({
        "planned": report.nplanned, "samples": report.nsamples, "made": report.nmade,
        "failed": len(report.failures), "shards": report.nshards, "resumed_shards": report.skipped_shards,
        "samples_per_shard": report.samples_per_shard,
        "workers": workers, "seconds": round(report.seconds, 3), "failures": [f.to_dict() for f in report.failures],
        "failed_shards": {str(k): str(v) for k, v in sorted(report.failed_shards.items())},
        "unused_garments": len(report.unused_garments),
        "quality": None if q is None else {"checked": q.checked, "flagged": q.flagged, "dropped": q.dropped,
                                           "by_check": dict(sorted(q.by_check.items()))},
        "validate": None, "export": None})
    table = Table(title=escape(f"build {raw} -> {out}"))
    for col in ("planned", "samples", "failed", "shards", "resumed", "seconds", "samples/s"):
        table.add_column(col, justify="right")
    table.add_row(str(report.nplanned), str(report.nsamples), str(len(report.failures)), str(report.nshards),
                  str(report.skipped_shards), f"{report.seconds:.1f}",
                  f"{report.nmade / max(report.seconds, 1e-9):.2f}")  # made by this run: resumed shards took no time
    console.print(table)
    console.print(f"{report.nshards} shard{'s' if report.nshards != 1 else ''} of up to {report.samples_per_shard} "
                  "samples"
                  + (f", {workers} worker process{'es' if workers > 1 else ''}" if distributor is Distributor.local
                     else f", {workers} Ray shard workers" if workers else ""))
    _print_quality(cfg, report)
    if report.failures:
        ft = Table(title="failures (also in the *_stats.json files)")
        for col in ("file", "stage", "reason"):
            ft.add_column(col)
        for f in report.failures[:30]:
            ft.add_row(escape(f.source), escape(f.stage), escape(f.reason))
        console.print(ft)
    if report.unused_garments:
        console.print(f"{len(report.unused_garments)} garment photos are not paired with a person")
    for index, error in sorted(report.failed_shards.items()):
        console.print(f"[red]shard {index} was not made[/]: {escape(str(error))}")
    if report.failed_shards:
        console.print("rerun the same command to retry the missing shards; finished shards are kept")
    if report.nsamples == 0:
        console.print("[red]no usable sample was made[/]")
        raise typer.Exit(1)
    local_out = _local_dir(out)
    if local_out is None:
        console.print(escape(f"validate, contact sheet and export skipped: {out} is remote (copy it locally and "
                             "run vitonprep validate)"))
        if report.failed_shards or (strict and report.failures):
            raise typer.Exit(1)
        return
    out = local_out
    # checked by as many processes as built it (Ray's shard workers may outnumber this machine's cores)
    rep = validate_shards(out, workers=min(workers or 1, os.cpu_count() or 1))
    summary["validate"] = {"ok": rep.ok, "samples": rep.nsamples, "errors": len(rep.errors),
                           "warnings": len(rep.warnings)}
    console.print(f"validate: {rep.nsamples} samples, {len(rep.errors)} errors, {len(rep.warnings)} warnings -> "
                  + ("[green]sound[/]" if rep.ok else "[red]NOT SOUND[/]"))
    for issue in rep.errors[:10]:
        console.print(f"  [red]{escape(issue.key)}[/]: {escape(issue.message)}")
    if sheet:
        contact_sheet(out, out / "contact_sheet.png", n=sheet)
        console.print(escape(f"contact sheet: {out / 'contact_sheet.png'}"))
    if export_vitonhd:
        try:
            exp = do_export(out, export_vitonhd)
        except (ValueError, OSError, DecodeError) as exc:
            raise fail(f"VITON-HD export: {exc}", 1) from exc
        summary["export"] = {"samples": exp.nsamples, "files": exp.nfiles, "pairing": exp.pairing,
                             "lists": exp.lists, "flagged": len(exp.flagged), "refused": len(exp.refused)}
        console.print(escape(f"exported {exp.nsamples} samples ({exp.nfiles} files) to {export_vitonhd}"))
        print_export_lines(exp, export_vitonhd)
        if exp.flagged:  # the export leaves them out (vitonprep export --keep-flagged keeps them)
            console.print(escape(f"left out {len(exp.flagged)} flagged samples: see vitonprep quality / inspect"),
                          style="yellow")
        if exp.refused:
            first = exp.refused[0]
            raise fail(f"VITON-HD export: {len(exp.refused)} samples refused, first {first.key or first.shard}: "
                       f"{first.reason} (export into an empty folder, or pass --overwrite)", 1)
    if not rep.ok or report.failed_shards or (strict and report.failures):
        raise typer.Exit(1)
