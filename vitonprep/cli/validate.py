"""`vitonprep validate SHARDS`."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from vitonprep.cli._common import console, fail, progress_bar, require_dir
from vitonprep.safepaths import write_atomic
from vitonprep.validate import ValidationReport, validate_shards

logger = logging.getLogger(__name__)


def validate(
    shards: Annotated[Path, typer.Argument(help="Folder of .tar shards (with manifest.json).")],
    report: Annotated[str | None, typer.Option(help="Write the JSON report here, or '-' for stdout (default: "
                                                    "SHARDS/validation_report.json; when it cannot be written, "
                                                    "a warning says so and the verdict stands).")] = None,
    show: Annotated[int, typer.Option(help="How many issues to list.")] = 30,
    workers: Annotated[int, typer.Option("--workers", "-j", min=1,
                                         help="Processes that check shards in parallel (the report is the same).")] = 1,
    strict: Annotated[bool, typer.Option(help="Quality flags (meta.json 'quality') are errors, not warnings.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Also print a JSON summary on stdout (its fields are "
                                                         "listed above); everything else goes to stderr.")] = False,
) -> None:
    """Read every sample back through the trainer's decoders and check the shard contract.

    Checks: tar integrity (regular, plainly named members only), required members, decodability, agreeing
    sizes, binary masks, CIHP label range, keypoints inside the image, mask areas (cloth masks under
    StableVITON's 122,880-px rule are flagged), duplicate keys, pairing, plain ids in meta.json, every shard's
    stats file (its completion marker) and per-member sha256, and manifest.json's size, checksums and counts.
    Samples flagged by the quality checks (meta.json 'quality', see vitonprep quality) are warnings, errors with
    --strict; a malformed 'quality' is an error. Exit 0 only if there is no error, 1 if there is one, 2 if the
    command is refused (no such folder, --json with --report -).

    --json prints one object on stdout: {"command": "validate", "shards": path, "ok": bool, "shards_checked": int,
    "samples": int, "errors": int, "warnings": int, "issues_by_check": {"error|warning:check": int}, "quality":
    {"passed", "flagged", "unchecked", "malformed": int, "flags_by_check": {check: int}}, "report": path or null,
    "exit_code": int}. The full list of issues is in the report file.
    """
    require_dir(shards, "shard folder")
    if as_json and report == "-":
        raise fail("--json and --report - would both write to stdout; give --report a file")
    with progress_bar() as progress:
        task = progress.add_task("validate", total=None, info="")
        rep = validate_shards(shards, progress=lambda name, n: progress.update(task, advance=1, info=name),
                              workers=workers, strict=strict)
    table = Table(title=f"validate {shards}")
    for col in ("shards", "samples", "errors", "warnings", "verdict"):
        table.add_column(col, justify="right")
    table.add_row(str(rep.nshards), str(rep.nsamples), str(len(rep.errors)), str(len(rep.warnings)),
                  "[green]sound[/]" if rep.ok else "[red]NOT SOUND[/]")
    console.print(table)
    if rep.issues:
        counts = Table(title="issues by check")
        counts.add_column("level")
        counts.add_column("check")
        counts.add_column("count", justify="right")
        for (level, check), n in sorted(rep.counts_by_check().items()):
            counts.add_row(level, check, str(n))
        console.print(counts)
    _print_quality(rep)
    for issue in (rep.errors + rep.warnings)[:show]:
        colour = "red" if issue.level == "error" else "yellow"
        console.print(f"[{colour}]{issue.level}[/] " + escape(f"{issue.shard} {issue.key or ''}: {issue.message}"))
    # the verdict is out before the report is written: a read-only dataset or a full disk costs the file only
    text = json.dumps(rep.to_dict(), indent=1)
    written: Path | None = None
    if report == "-":
        typer.echo(text)
    else:
        report_path = Path(report) if report else shards / "validation_report.json"
        try:
            write_atomic(report_path, text.encode())
        except OSError as exc:
            logger.debug("report not written", exc_info=True)
            console.print(escape(f"warning: could not write the report {report_path}: {exc.strerror or exc} "
                                 "(--report PATH or --report - for stdout)"), style="yellow")
        else:
            written = report_path
            console.print(escape(f"report: {report_path}"))
    if as_json:
        typer.echo(json.dumps(json_summary(rep, written)))
    if not rep.ok:
        raise typer.Exit(1)


def json_summary(rep: ValidationReport, report_path: Path | None) -> dict[str, Any]:
    """validate's --json object (the schema is in the command's help)."""
    return {"command": "validate", "shards": rep.shard_dir, "ok": rep.ok, "shards_checked": rep.nshards,
            "samples": rep.nsamples, "errors": len(rep.errors), "warnings": len(rep.warnings),
            "issues_by_check": {f"{level}:{check}": n for (level, check), n in sorted(rep.counts_by_check().items())},
            "quality": rep.quality_counts(), "report": str(report_path) if report_path else None,
            "exit_code": 0 if rep.ok else 1}


def _print_quality(rep: ValidationReport) -> None:
    """One line on what the quality checks said; flagged keys are listed with the issues."""
    q = rep.quality_counts()
    checked = q["passed"] + q["flagged"]
    if checked:
        by_check = ", ".join(f"{escape(k)} {n}" for k, n in q["flags_by_check"].items())
        colour = "yellow" if q["flagged"] else "green"
        console.print(f"quality: [{colour}]{q['flagged']} of {checked} checked samples flagged[/]"
                      + (f" ({by_check})" if by_check else ""))
    if q["unchecked"]:
        console.print(f"quality: {q['unchecked']} samples never quality-checked (vitonprep quality --annotate)")
