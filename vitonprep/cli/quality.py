"""`vitonprep quality SHARDS`: the quality checks over existing shards (after convert, on old builds)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from vitonprep.cli._common import console, fail, progress_bar, require_dir
from vitonprep.errors import ConfigError
from vitonprep.quality import CHECKS, QualityConfig, check_shards, load_quality_config
from vitonprep.quality.shards import AnnotateError, annotate_shards
from vitonprep.shards import list_shards


def quality(
    shards: Annotated[Path, typer.Argument(help="Folder of .tar shards.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the per-sample reports as JSON on stdout.")] = False,
    config: Annotated[Path | None, typer.Option(help="Pipeline YAML with a 'quality:' section (or a YAML of "
                                                     "thresholds only); default: the built-in thresholds.")] = None,
    strict: Annotated[bool, typer.Option(help="Exit 1 when any sample is flagged.")] = False,
    show: Annotated[int, typer.Option(help="How many flagged samples to list.")] = 50,
    annotate: Annotated[Path | None, typer.Option(
        metavar="OUT", help="Write a copy of the shards to this new folder with each meta.json carrying its "
                            "'quality' (the trainer's data.skip_flagged and export read it); SHARDS is only "
                            "read.")] = None,
    overwrite: Annotated[bool, typer.Option(help="--annotate: clear the folder first if it holds vitonprep "
                                                 "output.")] = False,
) -> None:
    """Judge every sample's maps with evidence independent of them: skeleton sanity, parse against pose, the
    agnostic/gt/cloth masks against keypoints and the garment photo, a person in the garment photo.

    Prints flagged samples per check and the flagged keys with reasons. --annotate OUT writes the shards again
    into OUT (a new folder) with the result in each meta.json, every other member byte-identical; the input must
    be sound (vitonprep validate). Exit 0 (--strict: 1 when anything is flagged or a sample does not decode;
    2 when OUT is refused, 1 when an input shard is not sound).
    """
    require_dir(shards, "shard folder")
    if not list_shards(shards):
        raise fail(f"no .tar shards in {shards}")
    cfg = load_quality_config(config) if config is not None else QualityConfig()
    with progress_bar() as progress:
        task = progress.add_task("quality", total=None, info="")

        def step(key: str, n: int) -> None:
            progress.update(task, advance=n, info=key)

        try:
            rep = (check_shards(shards, cfg, progress=step) if annotate is None
                   else annotate_shards(shards, annotate, cfg, progress=step, overwrite=overwrite))
        except ConfigError as exc:
            raise fail(str(exc)) from exc
        except AnnotateError as exc:
            raise fail(str(exc), 1) from exc
    if as_json:
        typer.echo(json.dumps(rep.to_dict(), indent=1))
    table = Table(title=f"quality {shards}: {len(rep.flagged)} of {len(rep.results)} samples flagged")
    table.add_column("check")
    table.add_column("flagged", justify="right")
    table.add_column("scored", justify="right")
    counts = rep.counts_by_check()
    for check in CHECKS:
        scored = sum(check in r.scores for _, _, r in rep.results)
        if scored or counts.get(check):
            table.add_row(check, str(counts.get(check, 0)), str(scored))
    console.print(table)
    for shard, key, r in rep.flagged[:show]:
        for flag in r.flags:
            console.print(f"[yellow]{escape(flag.check)}[/] " + escape(f"{shard} {key}: {flag.reason}"))
    for shard, key, why in rep.undecodable:
        console.print("[red]undecodable[/] " + escape(f"{shard} {key}: {why}"))
    if annotate is not None:
        console.print(escape(f"annotated copy: {annotate} ({len(rep.results)} samples, {len(rep.flagged)} "
                             "flagged)"))
    if strict and (rep.flagged or rep.undecodable):
        raise typer.Exit(1)
