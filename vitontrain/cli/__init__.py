"""The `vitontrain` command line: one module per command; only this layer prints."""

from __future__ import annotations

import logging

import typer
from rich.logging import RichHandler

from vitontrain.cli import check_data, evaluate, fit, sample, tryon
from vitontrain.cli._common import console

app = typer.Typer(
    name="vitontrain",
    help=(
        "Train and run StableVITON on vitonprep shards.\n\n"
        "  vitontrain check-data out/shards   (read samples as the trainer will)\n\n"
        "  vitontrain fit --config tiny        (train; --set KEY=VALUE overrides)"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages.")) -> None:
    """Train and run StableVITON on vitonprep shards."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False, show_time=False)],
        force=True,
    )


app.command("check-data")(check_data.check_data)
app.command("fit")(fit.fit)
app.command("sample")(sample.sample)
app.command("tryon")(tryon.tryon)
app.command("evaluate")(evaluate.evaluate)
