"""`vitonprep score ROOT`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from vitonprep.cli._common import console, fail
from vitonprep.config import load_pipeline_config
from vitonprep.errors import ConfigError
from vitonprep.score import score_vitonhd

HRVITON_GROUP_NAMES = ("background", "hair", "face", "upper", "bottom", "left_arm", "right_arm", "left_leg",
                       "right_leg", "left_shoe", "right_shoe", "socks", "noise")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def score(
    root: Annotated[Path, typer.Argument(help="VITON-HD folder with official annotations "
                                               "(e.g. data/vitonhd-official).")],
    pipeline: Annotated[str, typer.Option("--pipeline", "-p", help="Pipeline whose back-ends are scored.")] = "default",
    report: Annotated[Path | None, typer.Option(help="Write the JSON report here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON report on stdout (tables stay on "
                                                         "stderr).")] = False,
) -> None:
    """Score the pipeline's pose, parsing and cloth-mask back-ends against official annotations.

    PCK@0.1 (torso) for BODY_25 joints, overall and per joint group (head, arms, hips, legs, feet; hands at
    0.2 x hand size, docs/pose.md), mIoU over HR-VITON's 13 groups, cloth-mask IoU. On a few images these are
    smoke signals, not benchmarks.
    """
    try:
        cfg = load_pipeline_config(pipeline)
        rep = score_vitonhd(root, cfg)
    except ConfigError as exc:
        raise fail(str(exc)) from exc
    t = Table(title=f"fidelity of {cfg.name} on {root}")
    for col in ("image", "PCK@0.1", "mIoU (13 groups)"):
        t.add_column(col)
    for pid in sorted(set(rep.pck) | set(rep.miou)):
        c, n = rep.pck_counts.get(pid, (0, 0))
        t.add_row(pid, f"{rep.pck.get(pid, float('nan')):.3f} ({c}/{n})", f"{rep.miou.get(pid, float('nan')):.3f}")
    console.print(t)
    d = rep.to_dict()
    console.print(f"PCK overall {_fmt(d['pck@0.1_torso']['overall'])}; mean mIoU {_fmt(d['miou_13_groups']['mean'])}; "
                  f"cloth-mask IoU mean {_fmt(d['cloth_mask_iou']['mean'])}")
    # short titles: rich wraps a title to its table's width, and these tables are narrow
    console.print("hands: PCK@0.2 of the official hand's size (docs/pose.md)")
    p = Table(title="PCK per joint group")
    for col in ("group", "PCK", "correct / total"):
        p.add_column(col)
    for name, v in d["pck@0.1_torso"]["per_group"].items():
        p.add_row(name, "-" if v["pck"] is None else f"{v['pck']:.3f}", f"{v['correct']}/{v['total']}")
    console.print(p)
    console.print("IoU per HR-VITON group: the mean over the images where the group is present")
    g = Table(title="IoU per group")
    g.add_column("group")
    g.add_column("IoU")
    for gid, v in d["miou_13_groups"]["per_group"].items():
        g.add_row(HRVITON_GROUP_NAMES[int(gid)], f"{v:.3f}")
    console.print(g)
    if report:
        report.write_text(json.dumps(d, indent=1))
        console.print(f"report: {report}")
    if as_json:
        typer.echo(json.dumps(d, indent=1))
