"""The `vitontrain` command line: one module per command; only this layer prints."""

from __future__ import annotations

import logging

import typer

from vitontrain.cli import check_data, evaluate, export_checkpoint, fit, sample, tryon
from vitontrain.cli._common import CommandGroup, set_verbose, setup_logging

app = typer.Typer(
    name="vitontrain",
    cls=CommandGroup,
    help=(
        "Train and run StableVITON on vitonprep shards.\n\n"
        "  vitontrain check-data out/shards --config tiny   (check shards; read a batch as fit will)\n\n"
        "  vitontrain fit --config tiny        (train; --set KEY=VALUE overrides)\n\n"
        "  vitontrain export-checkpoint RUN.ckpt OUT.safetensors   (full model file, official layout)"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # click's plain help: at 80 columns rich's option tables cut long option names ("--guidance-scale…"); help
    # texts are therefore plain text (no rich markup to escape)
    rich_markup_mode=None,
)


@app.callback()
def main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages; errors show their "
                                                                     "traceback.")) -> None:
    """Train and run StableVITON on vitonprep shards."""
    set_verbose(verbose)
    setup_logging(verbose, logging.INFO)


app.command("check-data")(check_data.check_data)
app.command("fit")(fit.fit)
app.command("sample")(sample.sample)
app.command("tryon")(tryon.tryon)
app.command("evaluate")(evaluate.evaluate)
app.command("export-checkpoint")(export_checkpoint.export_checkpoint)
