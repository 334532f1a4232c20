"""`vitontrain check-data`: read samples exactly as the trainer will and check them against the contract."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from vitontrain.cli._common import console, fail, say


def check_data(
    shards: Annotated[Path, typer.Argument(help="Folder of vitonprep .tar shards.")],
    n: Annotated[int, typer.Option("-n", min=1, help="How many samples to decode and check.")] = 8,
) -> None:
    """Check every shard's tar and keys (whole files, plain and unique keys), then decode the first N samples
    exactly as the trainer will (the contract's decoders) and check them. Each problem is printed with its shard
    and sample key; exit 1 when there is any."""
    # imported when the command runs: webdataset imports torch, which the CLI's start should not pay for
    from vitontrain.data.shards import check_shards, shard_urls

    try:
        urls = shard_urls(shards)
    except FileNotFoundError as exc:
        raise fail(str(exc)) from exc
    report = check_shards(urls, n)
    table = Table(title=escape(f"first samples of {shards}"))
    for col in ("key", "shard", "fields", "image"):
        table.add_column(col)
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
    say(f"{len(report.checked)} samples match the shard contract; {report.shards} shards whole, "
        f"{report.keys} unique keys", "green")
