"""Console-script entry point, kept import-light on purpose (see `vitonprep.entry`): processes spawned by the
trainer re-import the script that started it."""

from __future__ import annotations


def main() -> None:
    from vitontrain.cli import app

    app(prog_name="vitontrain")
