"""`vitonprep doctor`: which back-ends can run here, with which weight files, packages and licences."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from vitonprep.cli._common import console, fail, out_console
from vitonprep.config import load_pipeline_config
from vitonprep.errors import ConfigError
from vitonprep.weights import ENV_VAR, DoctorReport, diagnose


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
        _print_report(rep, selected)
    if cfg is not None:
        bad = [b for b in rep.backends if selected.get(b.kind) == b.name and not b.usable]
        for b in bad:
            console.print(f"[red]{b.kind}: {b.name} is not usable:[/] {b.problem}")
        if bad:
            raise typer.Exit(1)


def _detail(label: str, text: str, indent: int = 4) -> None:
    """An indented ``label: text`` wrapped between words and never inside one: a URL or a path longer than the
    line stays whole (copyable), where a table column folded it into fragments."""
    width = max(40, out_console.width) - indent
    lines = textwrap.wrap(f"{label}: {text}", width, break_long_words=False, break_on_hyphens=False,
                          subsequent_indent="  ") or [f"{label}:"]
    for line in lines:
        out_console.print(" " * indent + line, soft_wrap=True, markup=False, highlight=False)


def _print_report(rep: DoctorReport, selected: dict[str, str]) -> None:
    """Back-ends as a table of short columns, then each one's weight files and licence, and each weight file, as
    indented lines: readable at 80 columns (seven-column tables folded names, URLs and licences into pieces)."""
    bt = Table(title="back-ends" + (" (* = selected by the pipeline)" if selected else ""), box=box.SIMPLE_HEAD,
               title_justify="left")
    for col in ("stage", "back-end", "usable", "approximate"):
        bt.add_column(col, no_wrap=True)
    for b in rep.backends:
        mark = " *" if selected.get(b.kind) == b.name else ""
        bt.add_row(b.kind, escape(b.name) + mark, "[green]yes[/]" if b.usable else "[red]no[/]",
                   "yes" if b.approximate else "no")
    out_console.print(bt)
    for b in rep.backends:
        out_console.print("  " + escape(b.name), style="bold", soft_wrap=True)
        if b.weights:
            _detail("weight files", ", ".join(f.spec.filename + ("" if f.path else " (missing)") for f in b.weights))
        if b.problem and all(f.path for f in b.weights):  # a missing file says itself above
            _detail("not usable", b.problem)
        _detail("licence", b.licence)
    out_console.print("\nweight files", style="bold")
    _detail("--weights-dir", rep.weights_dir or "-", 2)
    _detail(f"${ENV_VAR}", rep.env_dir or "-", 2)
    for f in rep.weights:
        state = f"found, {_size(f.size)}" if f.path else "missing"
        if f.sha256_ok is False:
            state += ", sha256 differs"
        out_console.print(f"  {f.spec.name}  {f.spec.filename}  {state}", soft_wrap=True, markup=False,
                          style="red" if not f.path or f.sha256_ok is False else None)
        if f.path:
            _detail("at", str(f.path))
        if f.sha256:
            _detail("sha256", f.sha256 + ("" if f.sha256_ok is not False else f" (expected {f.spec.sha256})"))
        _detail("source", f.spec.source)
        _detail("licence", f.spec.licence)
    pt = Table(title="packages", box=box.SIMPLE_HEAD, title_justify="left")
    pt.add_column("package", no_wrap=True)
    pt.add_column("version", no_wrap=True)
    for name, version in rep.packages.items():
        pt.add_row(name, version or "-")
    out_console.print(pt)
