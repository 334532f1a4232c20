"""`vitontrain check-data`: read samples exactly as the trainer will and check them against the contract."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from vitontrain.cli._common import console


def check_data(
    shards: Annotated[Path, typer.Argument(help="Folder of vitonprep .tar shards.")],
    n: Annotated[int, typer.Option("-n", min=1, help="How many samples to read.")] = 8,
) -> None:
    """Read the first N samples exactly as the trainer will (webdataset + the contract's decoders) and check them."""
    from vitontrain.data.shards import ContractError, check_sample, decoded_samples, shard_urls

    try:
        urls = shard_urls(shards)
    except FileNotFoundError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2)
    table = Table(title=f"first samples of {shards}")
    table.add_column("key")
    table.add_column("fields")
    table.add_column("image")
    count = 0
    try:
        for sample in decoded_samples(urls):
            check_sample(sample)
            table.add_row(sample["__key__"], str(len(sample) - 1), "x".join(map(str, sample["image"].shape)))
            count += 1
            if count >= n:
                break
    except (ContractError, ValueError) as exc:
        console.print(table)
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1)
    console.print(table)
    if count == 0:
        console.print("[red]error:[/] no samples read")
        raise typer.Exit(1)
    console.print(f"[green]{count} samples match the shard contract[/]")
