"""`vitonprep doctor`: which back-ends can run here, with which weight files, packages and licences."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from vitonprep.cli._common import console, fail, out_console
from vitonprep.config import load_pipeline_config
from vitonprep.errors import ConfigError
from vitonprep.weights import ENV_VAR, diagnose


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n} B"


def doctor(
    weights_dir: Annotated[Path | None, typer.Option("--weights-dir", help="Folder of weight files, as for "
                                                     "`vitonprep build --weights-dir`.")] = None,
    pipeline: Annotated[str | None, typer.Option("--pipeline", "-p", help="Also check this pipeline (YAML file or "
                                                 "name in pipelines/): exit 1 if one of its back-ends is not "
                                                 "usable.")] = None,
    hash_files: Annotated[bool, typer.Option("--hash/--no-hash", help="sha256 of every weight file found "
                                             "(seconds per GB).")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """List every back-end, whether it is usable here, the weight files it uses (size, sha256), package versions
    and licences. Nothing is downloaded and no model is loaded."""
    cfg = None
    if pipeline is not None:
        try:
            cfg = load_pipeline_config(pipeline)
        except ConfigError as exc:
            raise fail(str(exc)) from exc
    wdir = weights_dir if weights_dir is not None else (Path(cfg.weights_dir) if cfg and cfg.weights_dir else None)
    choices = {}
    if cfg is not None:
        choices = {kind: getattr(cfg.stages, kind) for kind in ("pose", "person", "parsing", "densepose",
                                                                "cloth_mask")}
    rep = diagnose(wdir, hash_files=hash_files, selected=choices)
    selected = {kind: choice.backend for kind, choice in choices.items()}
    if as_json:
        def wf(f):
            return {"name": f.spec.name, "file": f.spec.filename, "path": str(f.path) if f.path else None,
                    "size": f.size, "sha256": f.sha256, "sha256_ok": f.sha256_ok, "source": f.spec.source,
                    "licence": f.spec.licence}

        out_console.print_json(json.dumps({
            "weights_dir": rep.weights_dir, "env": {ENV_VAR: rep.env_dir},
            "backends": [{"kind": b.kind, "name": b.name, "usable": b.usable, "approximate": b.approximate,
                          "problem": b.problem, "licence": b.licence, "weights": [wf(f) for f in b.weights],
                          "selected": selected.get(b.kind) == b.name} for b in rep.backends],
            "weights": [wf(f) for f in rep.weights],
            "packages": rep.packages,
        }))
    else:
        bt = Table(title="back-ends")
        for col in ("stage", "back-end", "usable", "weight files", "licence"):
            bt.add_column(col, overflow="fold")
        notes = []
        for b in rep.backends:
            mark = " *" if selected.get(b.kind) == b.name else ""
            files = ", ".join(f"{f.spec.filename} ({_size(f.size)})" if f.path else f"{f.spec.filename} (missing)"
                              for f in b.weights)
            bt.add_row(b.kind, b.name + mark + (" (approximate)" if b.approximate else ""),
                       "[green]yes[/]" if b.usable else "[red]no[/]", files or "-", b.licence)
            if b.problem and all(f.path for f in b.weights):  # missing files are explained in the next table
                notes.append(f"{b.name}: {b.problem}")
        out_console.print(bt)
        for note in notes:
            out_console.print(f"[red]{note}[/]")
        wt = Table(title=f"weight files (--weights-dir: {rep.weights_dir or '-'}; ${ENV_VAR}: {rep.env_dir or '-'})")
        for col in ("name", "file", "found at", "size", "sha256", "source", "licence"):
            wt.add_column(col, overflow="fold")
        for f in rep.weights:
            digest = f.sha256 or "-"
            if f.sha256_ok is False:
                digest = f"[red]{digest} (expected {f.spec.sha256})[/]"
            wt.add_row(f.spec.name, f.spec.filename, str(f.path) if f.path else "[red]missing[/]", _size(f.size),
                       digest, f.spec.source, f.spec.licence)
        out_console.print(wt)
        pt = Table(title="packages")
        pt.add_column("package")
        pt.add_column("version")
        for name, version in rep.packages.items():
            pt.add_row(name, version or "-")
        out_console.print(pt)
        if selected:
            out_console.print("* = selected by the pipeline")
    if cfg is not None:
        bad = [b for b in rep.backends if selected.get(b.kind) == b.name and not b.usable]
        for b in bad:
            console.print(f"[red]{b.kind}: {b.name} is not usable:[/] {b.problem}")
        if bad:
            raise typer.Exit(1)
