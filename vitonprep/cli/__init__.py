"""The `vitonprep` command line: thin commands over library functions; only this layer prints."""

from __future__ import annotations

import logging

import typer
from rich.console import Console

from vitonprep.cli import build, convert, doctor, export, inspect, quality, score, validate
from vitonprep.cli._common import GuardedGroup, setup_logging

console = Console(stderr=True)

app = typer.Typer(
    name="vitonprep",
    cls=GuardedGroup,
    help=(
        "Make, check and convert VITON-HD-style try-on datasets as WebDataset shards.\n\n"
        "Typical session:\n\n"
        "  vitonprep build data/samples out/shards   (raw photos, offline models)\n\n"
        "  vitonprep convert vitonhd data/vitonhd-official out/shards\n\n"
        "  vitonprep validate out/shards\n\n"
        "  vitonprep inspect out/shards --out out/sheet.png\n\n"
        "  vitonprep export out/shards out/vitonhd"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # click's plain help: at 80 columns rich's option tables cut long option names ("--samples-per-sh…") and fold
    # the help into a narrow column; help texts are therefore plain text (no rich markup to escape)
    rich_markup_mode=None,
)


@app.callback()
def main(verbose: bool = typer.Option(False, "--verbose", "-v",
                                      help="Log debug messages; errors show their traceback.")) -> None:
    setup_logging(console, verbose, logging.WARNING)


app.command("build")(build.build)
app.add_typer(convert.app, name="convert")
app.command("validate")(validate.validate)
app.command("inspect")(inspect.inspect)
app.command("export")(export.export)
app.command("score")(score.score)
app.command("doctor")(doctor.doctor)
app.command("quality")(quality.quality)
