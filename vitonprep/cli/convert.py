"""`vitonprep convert vitonhd|dresscode ROOT OUT`."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from vitonprep.cli._common import console, fail, progress_bar
from vitonprep.convert import ConvertConfig, ConvertReport, convert_dataset
from vitonprep.errors import ConfigError
from vitonprep.outdir import clear_output, output_lock, refuse_overlap

app = typer.Typer(
    help="Import an existing VITON-HD or DressCode folder into validated shards, deriving the maps it lacks "
    "(agnostic, agnostic-mask, parse-agnostic, gt_cloth_warped_mask, skeleton; DensePose and cloth masks "
    "from the offline back-ends, marked in each sample's meta.json).",
    no_args_is_help=True,
    rich_markup_mode=None,  # plain help that fits 80 columns, as the main app's (vitonprep.cli)
)

Root = Annotated[Path, typer.Argument(help="Dataset root (with train/ and test/, or one split folder).")]
Out = Annotated[Path, typer.Argument(help="Output folder for {shard:05d}.tar, stats and manifest.json.")]
PerShard = Annotated[int, typer.Option("--samples-per-shard", min=1, help="Samples per output shard.")]
Workers = Annotated[int, typer.Option("--workers", "-j", min=1, help="Worker processes (one shard each).")]
Split = Annotated[str, typer.Option("--split", help="Split name when ROOT is a single split folder.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Delete OUT first instead of resuming into it.")]


def _run(cfg: ConvertConfig, overwrite: bool) -> None:
    with ExitStack() as stack:
        try:  # the dataset being converted is never written into nor deleted
            refuse_overlap("OUT", cfg.out, {"ROOT": cfg.source}, overwrite)
            stack.enter_context(output_lock(cfg.out))
            if overwrite:
                clear_output(cfg.out)
        except ConfigError as exc:
            raise fail(str(exc)) from exc
        _convert(cfg)


def _convert(cfg: ConvertConfig) -> None:
    with progress_bar() as progress:
        task = progress.add_task(f"convert {cfg.dataset}", total=None, info="")

        def on_shard(result, done, total):
            progress.update(task, completed=done, total=total,
                            info=f"{result.nsamples} samples, {len(result.failures)} failures"
                            + (" (resumed)" if result.skipped else ""))

        try:
            report = convert_dataset(cfg, progress=on_shard)
        except ConfigError as exc:
            raise fail(str(exc)) from exc
    _print_report(report, cfg)
    if report.nsamples == 0 or report.failed_shards:
        raise typer.Exit(1)


def _print_report(report: ConvertReport, cfg: ConvertConfig) -> None:
    table = Table(title=escape(f"convert {cfg.dataset}: {cfg.source} -> {cfg.out}"))
    table.add_column("samples", justify="right")
    table.add_column("shards", justify="right")
    table.add_column("resumed shards", justify="right")
    table.add_column("failures", justify="right")
    table.add_column("seconds", justify="right")
    table.add_row(str(report.nsamples), str(report.nshards), str(report.skipped_shards), str(len(report.failures)),
                  f"{report.seconds:.1f}")
    console.print(table)
    for name, lines in sorted(report.pairs.items()):
        console.print(escape(f"  {name}: {len(lines)} pairs"))
    for f in report.failures[:20]:
        console.print(f"  [yellow]failed[/] {escape(f'{f.source} [{f.stage}]: {f.reason}')}")
    if len(report.failures) > 20:
        console.print(f"  ... {len(report.failures) - 20} more in the *_stats.json files")
    for index, error in sorted(report.failed_shards.items()):
        console.print(f"[red]shard {index} was not made[/]: {escape(error)}")
    if report.failed_shards:
        console.print("rerun the same command to retry the missing shards; finished shards are kept")


@app.command("vitonhd")
def vitonhd(root: Root, out: Out, samples_per_shard: PerShard = 100, workers: Workers = 1,
            split: Split = "test", overwrite: Overwrite = False) -> None:
    """VITON-HD (zalando-hd-resized v3 names, or the 2021 dashed names) -> shards."""
    _run(ConvertConfig("vitonhd", root, out, samples_per_shard, workers, split), overwrite)


@app.command("dresscode")
def dresscode(
    root: Root, out: Out, samples_per_shard: PerShard = 100, workers: Workers = 1, split: Split = "test",
    category: Annotated[list[str] | None, typer.Option("--category", help="Only these categories (repeatable).")
                        ] = None,
    overwrite: Overwrite = False,
) -> None:
    """DressCode ({upper_body,lower_body,dresses}/images, keypoints, label_maps, dense) -> shards."""
    try:
        cfg = ConvertConfig("dresscode", root, out, samples_per_shard, workers, split, tuple(category or ()))
    except ConfigError as exc:
        raise fail(str(exc)) from exc
    _run(cfg, overwrite)
