"""`vitontrain check-data`: check shards against the contract and, with a training config, read the first batch
through the trainer's own loader."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from vitontrain.cli._common import console, fail, say


def check_data(
    shards: Annotated[Path, typer.Argument(help="Folder of vitonprep .tar shards.")],
    n: Annotated[int, typer.Option("-n", min=1, help="How many samples to decode and check.")] = 8,
    config: Annotated[Optional[str], typer.Option(
        "--config", "-c", help="Training YAML (as for fit: tiny, stableviton or a path): also read the first batch "
                               "through the trainer's loader (data.pairs, data.skip_flagged, data.height x "
                               "data.width, augmentations).")] = None,
    overrides: Annotated[Optional[list[str]], typer.Option(
        "--set", "-s", help="Dotted override of --config, KEY=VALUE, repeatable (as for fit).")] = None,
) -> None:
    """Check every shard's tar and keys (whole files, plain and unique keys), then decode the first N samples at
    full size with the contract's decoders and check them against the contract. Each problem is printed with its
    shard and sample key; exit 1 when there is any.

    With --config, the first batch is then read exactly as `vitontrain fit` with that config will read it: the
    trainer's loader keeps only data.pairs, skips samples the quality checks flagged (data.skip_flagged), decodes at
    data.height x data.width and augments.

      vitontrain check-data out/shards --config stableviton
    """
    # imported when the command runs: webdataset imports torch, which the CLI's start should not pay for
    from vitonprep import ConfigError
    from vitontrain.data.module import ShardDataModule
    from vitontrain.data.shards import check_shards, shard_urls
    from vitontrain.train.config import load_fit_config

    try:
        urls = shard_urls(shards)
        cfg = load_fit_config(config, [f"data.shards=[{shards}]", *(overrides or [])]) if config else None
    except FileNotFoundError as exc:
        raise fail(str(exc)) from exc
    except (ConfigError, ValueError) as exc:
        raise fail(str(exc)) from exc
    report = check_shards(urls, n)
    table = Table(title=escape(f"first samples of {shards}"))
    for col in ("key", "shard", "fields", "image"):
        table.add_column(col, overflow="fold")
    for row in report.checked:
        table.add_row(*(escape(str(row[c])) for c in ("key", "shard", "fields", "image")))
    if report.checked:
        console.print(table)
    for problem in report.problems:
        say(f"error: {problem}", "red")
    if report.problems:
        raise fail(f"{len(report.problems)} problem(s) in {report.shards} shard(s) of {shards}", 1)
    if not report.checked:
        raise fail("no samples read", 1)
    say(f"{len(report.checked)} samples match the shard contract (decoded at full size); {report.shards} shards "
        f"whole, {report.keys} unique keys", "green")
    if cfg is None:
        say("add --config NAME to read the first batch as `vitontrain fit --config NAME` will (data.pairs, "
            "data.skip_flagged, the training size)")
        return
    data = dataclasses.replace(cfg.data, num_workers=0)  # the trainer's loader, in this process
    try:
        module = ShardDataModule(data)
        module.setup("fit")
        batch = next(iter(module.train_dataloader()))
    except (ValueError, FileNotFoundError) as exc:  # no sample the config keeps, a damaged member, …
        raise fail(f"the trainer's loader ({cfg.source}): {exc}", 1) from exc
    b, _, h, w = batch["image"].shape
    say(f"first batch as `vitontrain fit` reads it: {b} samples at {h}x{w} (data.pairs {list(data.pairs)}, "
        f"data.skip_flagged {str(data.skip_flagged).lower()}, augment {str(data.augment.enabled).lower()})", "green")
