from __future__ import annotations

import logging

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(stderr=True)
out_console = Console()


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def fail(message: str, code: int = 2) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


def require_dir(path: Path, what: str) -> None:
    if not path.is_dir():
        raise fail(f"{what} {path} is not a folder")


def setup_logging(console: Console, verbose: bool, level: int = logging.WARNING) -> None:
    """Library loggers to the CLI's stderr console (rich); ``--verbose`` shows debug messages."""
    from rich.logging import RichHandler

    logging.basicConfig(level=logging.DEBUG if verbose else level, format="%(message)s",
                        handlers=[RichHandler(console=console, show_path=False, show_time=False)], force=True)
