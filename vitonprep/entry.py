"""Console-script entry point, kept import-light on purpose.

A worker process re-imports the script that started its parent (multiprocessing's main-module fix-up, for spawn
and forkserver workers alike); pip's ``vitonprep`` script imports this module, so build and validate workers do
not import the CLI (typer, rich, every command: ~0.25 s each) for nothing.
"""

from __future__ import annotations


def main() -> None:
    from vitonprep.cli import app

    app(prog_name="vitonprep")
