"""`vitontrain fit`: train StableVITON on vitonprep shards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from vitontrain.cli._common import fail, say


def fit(
    config: Annotated[str, typer.Option("--config", "-c", help="Training YAML: a path, or a name in "
                                         "pipelines/train/ (tiny, stableviton).")] = "tiny",
    overrides: Annotated[Optional[list[str]], typer.Option(
        "--set", "-s", help="Dotted override KEY=VALUE (value read as YAML), repeatable: "
                            "--set data.shards=[out/shards] --set train.max_steps=50")] = None,
    resume: Annotated[str, typer.Option(help="auto: continue from OUT_DIR/checkpoints/last.ckpt when it exists; "
                                             "none: start fresh; or a checkpoint path.")] = "auto",
    progress: Annotated[bool, typer.Option(help="Show the progress bar.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Also print a JSON summary (step, checkpoints, timings) "
                                                         "on stdout; everything else goes to stderr.")] = False,
) -> None:
    """Train StableVITON on vitonprep shards (PyTorch Lightning; one GPU, many GPUs or CPU).

    Writes OUT_DIR/config.yaml (the resolved config), OUT_DIR/checkpoints/{stepNNNNNNN,last}.ckpt (official key
    names, the training state and the resolved config; the frozen weights are left out and rebuilt from the init
    files on load — `vitontrain export-checkpoint` writes a full file), OUT_DIR/samples/*.jpg (paired and
    unpaired grids: person | garment | agnostic | result) and CSV + TensorBoard logs. Re-running the same command
    resumes after a crash.

    Example (CPU smoke run on the bundled samples, after `make demo`):

      vitontrain fit --config tiny --set train.max_steps=50
    """
    # imported when the command runs (they load torch and Lightning): `vitontrain --help` stays fast
    from vitonprep import ConfigError
    from vitontrain.checkpoints import CheckpointError
    from vitontrain.data.shards import ShardReadError
    from vitontrain.train.config import load_fit_config
    from vitontrain.train.fit import build_fit, run_fit

    try:
        cfg = load_fit_config(config, list(overrides or []))
        run = build_fit(cfg, resume=resume, progress=progress)
    except CheckpointError as exc:  # an init.* or resume file that is unsafe, unreadable or does not fit
        raise fail(str(exc)) from exc
    except ShardReadError as exc:  # a truncated or damaged shard: the data, not the command, is wrong
        raise fail(str(exc), code=1) from exc
    except FileNotFoundError as exc:
        raise fail(f"{exc} (make shards first: `vitonprep build RAW OUT` or `make demo`)") from exc
    except (ConfigError, ValueError) as exc:
        raise fail(str(exc)) from exc
    try:
        run_fit(run)
    except CheckpointError as exc:
        raise fail(str(exc)) from exc
    except (FileNotFoundError, ValueError) as exc:  # data problems surface at the first batch
        raise fail(str(exc), code=1) from exc
    wait, compute = run.timing.data_wait, run.timing.compute
    if compute:
        say(f"trained to step {run.trainer.global_step}; per batch: data wait "
            f"{sum(wait) / max(1, len(wait)):.3f} s, compute {sum(compute) / len(compute):.3f} s", "green")
    say(f"checkpoints: {cfg.train.out_dir}/checkpoints   samples: {cfg.train.out_dir}/samples")
    if as_json:
        ckpts = Path(cfg.train.out_dir) / "checkpoints"
        last = ckpts / "last.ckpt"
        typer.echo(json.dumps({
            "command": "fit", "step": run.trainer.global_step, "out_dir": str(cfg.train.out_dir),
            "last": str(last.resolve()) if last.exists() else None,
            "checkpoints": sorted(str(p) for p in ckpts.glob("step*.ckpt")),
            "data_wait_s": round(sum(wait) / len(wait), 4) if wait else None,
            "compute_s": round(sum(compute) / len(compute), 4) if compute else None}))
