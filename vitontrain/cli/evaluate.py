"""`vitontrain evaluate`: SSIM, LPIPS, FID and KID of a `vitontrain sample` output, with a pinned protocol."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from vitonprep import ConfigError, resolve_device
from vitontrain.cli._common import console, fail, say


def evaluate(
    generated: Annotated[Path, typer.Argument(help="Output folder of `vitontrain sample` (with samples.json).")],
    real: Annotated[Path, typer.Argument(help="Real test persons: vitonprep shards, a VITON-HD folder or a folder "
                                              "of person photos (file stem = person id).")],
    inception_weights: Annotated[Path, typer.Option(
        "--inception-weights", help="FID InceptionV3 weights (torch-fidelity's "
                                    "weights-inception-2015-12-05-6726825d.pth).")],
    lpips_weights: Annotated[Path, typer.Option(
        "--lpips-weights", help="LPIPS backbone: a torchvision state dict (alexnet-owt-7be5be79.pth for alex).")],
    lpips_linear: Annotated[Optional[Path], typer.Option(
        "--lpips-linear", help="LPIPS linear heads (default: LPIPS v0.1 bundled with torchmetrics).")] = None,
    lpips_net: Annotated[str, typer.Option(help="alex | vgg | squeeze")] = "alex",
    report: Annotated[Optional[Path], typer.Option("--report", "-r", help="JSON report "
                                                   "(default GENERATED/metrics.json).")] = None,
    height: Annotated[int, typer.Option(min=16, help="Evaluation image height.")] = 512,
    width: Annotated[int, typer.Option(min=16, help="Evaluation image width.")] = 384,
    resize_filter: Annotated[str, typer.Option(help="PIL filter for images not at HxW: bicubic, bilinear, "
                                                    "lanczos, box.")] = "bicubic",
    split: Annotated[Optional[str], typer.Option(help="Split of the real source (VITON-HD: test).")] = "test",
    kid_subsets: Annotated[int, typer.Option(min=1)] = 100,
    kid_subset_size: Annotated[int, typer.Option(min=2)] = 1000,
    feature_dim: Annotated[int, typer.Option(help="Inception features: 2048 (standard FID/KID); 64/192/768 only "
                                                  "for quick checks (not comparable).")] = 2048,
    batch_size: Annotated[int, typer.Option(min=1)] = 16,
    progress: Annotated[bool, typer.Option(help="Show the progress bar.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Also print a JSON summary (metrics per mode, the report's "
                                                         "path) on stdout; everything else goes to stderr.")] = False,
    device: Annotated[str, typer.Option(help="Where Inception and LPIPS run: auto (CUDA when visible), cpu, cuda, "
                                             "cuda:N. Written into the report.")] = "auto",
) -> None:
    """Paired SSIM/LPIPS (generated vs the person's own photo) and FID/KID (paired and unpaired generated images
    vs all real test persons). The protocol — image size, resize filter, extractor, weights sha256, test lists —
    is written into the report (docs/evaluation.md).

      vitontrain evaluate out/tryon data/zalando-hd-resized --inception-weights w/inception.pth \\
          --lpips-weights w/alexnet-owt-7be5be79.pth
    """
    # imported when the command runs (torch, torchmetrics), not when the CLI starts; not an import cycle
    from vitontrain.evaluation import EvalProtocol, WeightsError, evaluate_run

    try:
        resolve_device(device)  # a wrong or absent device fails here, before any weights or image are read
    except (TypeError, ConfigError) as exc:
        raise fail(f"--device: {exc}") from exc
    try:
        protocol = EvalProtocol(height=height, width=width, resize_filter=resize_filter,
                                inception_weights=inception_weights, lpips_backbone_weights=lpips_weights,
                                lpips_linear_weights=lpips_linear, lpips_net=lpips_net, kid_subsets=kid_subsets,
                                kid_subset_size=kid_subset_size, feature_dim=feature_dim, batch_size=batch_size)
        protocol.check_files()
    except (WeightsError, ValueError) as exc:
        raise fail(str(exc)) from exc
    report_path = report or generated / "metrics.json"
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=console, disable=not progress) as bar:
        tasks: dict[str, int] = {}

        def on_progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done)

        try:
            result = evaluate_run(generated, real, protocol, split or None, report_path, on_progress, device)
        except WeightsError as exc:
            raise fail(str(exc)) from exc
        except (FileNotFoundError, ValueError) as exc:
            raise fail(str(exc), 1) from exc
    table = Table(title=escape(f"{generated} vs {real} ({height}x{width})"))
    for col in ("mode", "n", "SSIM↑", "LPIPS↓", "FID↓", "KID×100↓"):
        table.add_column(col)
    for mode, r in result["results"].items():
        table.add_row(mode, str(r["n"]), f"{r['ssim']:.4f}" if "ssim" in r else "–",
                      f"{r['lpips']:.4f}" if "lpips" in r else "–", f"{r['fid']:.3f}",
                      f"{100 * r['kid_mean']:.3f} ± {100 * r['kid_std']:.3f}")
    console.print(table)
    say(f"report: {report_path}")
    proto = result["protocol"]
    checked = (("InceptionV3", proto["fid_kid"]["weights"]), ("LPIPS backbone", proto["lpips"]["backbone_weights"]))
    for what, info in checked:
        if info and not info.get("is_reference_file", True):
            say(f"warning: {what} weights {info['path']} are not the reference file (sha256 {info['sha256'][:12]}…): "
                f"numbers are not comparable with published ones", "yellow")
    if feature_dim != 2048:
        say(f"warning: FID/KID on {feature_dim}-d Inception features: not comparable with published (2048-d) "
            f"numbers", "yellow")
    if result["resized"]["generated"]["enlarged"] or result["resized"]["real"]["enlarged"]:
        say(f"warning: some images were enlarged to {height}x{width}: {json.dumps(result['resized'])}", "yellow")
    if as_json:
        typer.echo(json.dumps({"command": "evaluate", "report": str(report_path), "split": result["split"],
                               "size": [height, width], "n_real": len(result["real_persons"]),
                               "results": result["results"]}))
