"""Shared pieces of the `vitontrain` commands: the console (stderr), one-line error exits, and the command group
that turns any error a command did not expect into one such line too.

Messages carry data (paths, config values, sample keys, exception text) that may hold ``[`` … ``]``: they are
escaped before rich sees them, so they print literally instead of being read (or rejected) as markup."""

from __future__ import annotations

import logging
import sys
import traceback
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup
from typer.exceptions import Abort, TyperException

console = Console(stderr=True)

#: set by the app callback from ``vitontrain --verbose``
VERBOSE = {"on": False}


def set_verbose(on: bool) -> None:
    VERBOSE["on"] = on


def setup_logging(verbose: bool, level: int = logging.INFO) -> None:
    """Library loggers to this console (stderr, rich); ``--verbose`` shows debug messages. (Kept here rather than
    imported from vitonprep's CLI, which would import every vitonprep command with it.)"""
    from rich.logging import RichHandler

    logging.basicConfig(level=logging.DEBUG if verbose else level, format="%(message)s",
                        handlers=[RichHandler(console=console, show_path=False, show_time=False)], force=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: message`` and return the exit to raise. Exit codes: 2 = refused input (arguments, config,
    unsafe or unreadable files), 1 = the data or the run failed. With ``--verbose``, the traceback of the exception
    being handled is printed first."""
    if VERBOSE["on"] and sys.exc_info()[1] is not None:
        console.print(traceback.format_exc(), markup=False, highlight=False, soft_wrap=True)
    # soft_wrap: one line however long (paths stay copyable; tests and log scrapers see one line)
    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    return typer.Exit(code)


def say(message: str, style: str = "") -> None:
    """Print one informational line whose text is data (escaped), optionally in a rich style."""
    console.print(f"[{style}]{escape(message)}[/]" if style else escape(message), soft_wrap=True)


class CommandGroup(TyperGroup):
    """Every command's unexpected exception becomes one ``error:`` line and exit 1 (the traceback only under
    ``--verbose``): the commands map the failures they know to messages; this is the net under them."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, Abort, TyperException):
            raise
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [""])[0]
            raise fail(f"unexpected {type(exc).__name__}: {first} (run `vitontrain --verbose …` for the "
                       f"traceback)", 1) from exc
