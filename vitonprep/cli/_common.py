from __future__ import annotations

import errno
import logging
import traceback
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from typer.core import TyperGroup

from vitonprep.errors import VitonprepError

console = Console(stderr=True)
out_console = Console()

#: set by each command line's --verbose callback: errors then show their traceback
_VERBOSE = {"on": False}


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
    """Print one error line and return the exit to raise. ``message`` is plain text: it often carries data (file
    names, user input, hints such as ``'vitonprep[ray]'``), so rich markup in it is shown, never interpreted."""
    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)  # one line, however long
    return typer.Exit(code)


def require_dir(path: Path, what: str) -> None:
    if not path.is_dir():
        raise fail(f"{what} {path} is not a folder")


def setup_logging(console: Console, verbose: bool, level: int = logging.WARNING) -> None:
    """Library loggers to the CLI's stderr console (rich); ``--verbose`` shows debug messages and tracebacks."""
    from rich.logging import RichHandler

    _VERBOSE["on"] = verbose
    logging.basicConfig(level=logging.DEBUG if verbose else level, format="%(message)s",
                        handlers=[RichHandler(console=console, show_path=False, show_time=False, markup=False)],
                        force=True)


def _describe(exc: BaseException) -> tuple[str, int]:
    """(one line, exit code) for an error that reached the command line: refusals of input or configuration exit
    2, failures of the work itself (disk full, a broken worker, a bug) exit 1."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        where = f" writing {exc.filename}" if exc.filename else ""
        return f"no space left on the device{where}; free some space and rerun the same command to resume", 1
    if isinstance(exc, VitonprepError):
        return str(exc), 2
    if isinstance(exc, OSError):
        return str(exc), 1
    return f"{type(exc).__name__}: {exc}", 1


class GuardedGroup(TyperGroup):
    """A command group whose uncaught errors end in one line and an exit code instead of a traceback; ``--verbose``
    (the group's option, read before any command runs) prints the traceback first."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except Exception as exc:
            if type(exc).__module__.split(".")[0] in ("click", "typer"):
                raise  # usage errors, --help, typer.Exit: the command line's own flow (typer vendors click)
            # every other error: one line, code by kind; traceback on request
            message, code = _describe(exc)
            if _VERBOSE["on"]:
                console.print(escape("".join(traceback.format_exception(exc))), end="")
            else:
                message += " (--verbose shows the traceback)"
            console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
            raise typer.Exit(code) from exc
