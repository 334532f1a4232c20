"""`vitontrain sample`: try-on images for every test pair of vitonprep shards or a VITON-HD folder."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from vitontrain.cli._common import console, fail, say


class Sampler(str, Enum):
    plms = "plms"
    ddim = "ddim"


class Start(str, Enum):
    person = "person"
    noise = "noise"


class Mode(str, Enum):
    paired = "paired"
    unpaired = "unpaired"
    all = "all"


class Precision(str, Enum):
    auto = "auto"
    bf16 = "bf16"
    fp32 = "fp32"


MODEL_CONFIG_HELP = "Model YAML: a path, or a name in pipelines/train/ (stableviton, tiny)."
SAMPLE_CONFIG_HELP = ("Model YAML: a path, or a name in pipelines/train/ (stableviton, tiny). Default: the config "
                      "stored in a vitontrain checkpoint, else stableviton; given with such a checkpoint, it must "
                      "agree with the stored one.")

HEIGHT_HELP = ("Model input height, a multiple of 64. Default: the size the model was trained at (data.height of "
               "the checkpoint's or --config's YAML: 256 for tiny, 512 for stableviton).")
WIDTH_HELP = "Model input width, a multiple of 64. Default: as --height (192 for tiny, 384 for stableviton)."
RANDOM_INIT_HELP = ("Sample without a checkpoint, with random weights: a smoke run that checks the install and the "
                    "pipeline end to end (the images are noise), e.g. --config tiny --random-init.")


def sample(
    source: Annotated[Path, typer.Argument(help="vitonprep shards, or a VITON-HD folder (converted on the fly).")],
    out: Annotated[Path, typer.Argument(help="Output folder: pair/, unpair/, grid_*.jpg, samples.json.")],
    checkpoint: Annotated[Optional[Path], typer.Option(
        "--checkpoint", "-k", help="StableVITON checkpoint (VITONHD.ckpt, a vitontrain checkpoint, .safetensors).")
    ] = None,
    config: Annotated[Optional[str], typer.Option("--config", "-c", help=SAMPLE_CONFIG_HELP)] = None,
    sampler: Annotated[Sampler, typer.Option(help="plms (official inference) or ddim.")] = Sampler.plms,
    steps: Annotated[int, typer.Option(min=1, help="Sampling steps (official grid range(0,1000,1000//steps)+1).")] = 50,
    eta: Annotated[float, typer.Option(min=0.0, help="DDIM η (PLMS needs 0).")] = 0.0,
    guidance_scale: Annotated[float, typer.Option("--guidance-scale", "--cfg", help="Classifier-free guidance "
                                                  "scale: 1.0 = official inference (no CFG), 5.0 = official "
                                                  "validation.")] = 1.0,
    start: Annotated[Start, typer.Option(help="person: the person latent noised to t=999 (official); noise: "
                                              "pure noise.")] = Start.person,
    repaint: Annotated[bool, typer.Option(help="Paste the visible person region back (official --repaint).")] = False,
    mode: Annotated[Mode, typer.Option(help="Which samples: paired, unpaired or all.")] = Mode.all,
    height: Annotated[Optional[int], typer.Option(min=64, help=HEIGHT_HELP)] = None,
    width: Annotated[Optional[int], typer.Option(min=64, help=WIDTH_HELP)] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1)] = 4,
    limit: Annotated[Optional[int], typer.Option(min=1, help="At most N samples per mode.")] = None,
    split: Annotated[Optional[str], typer.Option(help="Only this split (test/train); default: all.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of batch i is seed + i.")] = 0,
    precision: Annotated[Precision, typer.Option(help="auto: bf16 autocast on a CUDA GPU that supports it, else "
                                                      "fp32.")] = Precision.auto,
    threads: Annotated[Optional[int], typer.Option(min=1, help="CPU threads for torch (on a busy machine 1 can "
                                                           "be much faster than more).")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:1 …")] = "cpu",
    grid_rows: Annotated[int, typer.Option(min=0, help="Rows of each grid image.")] = 8,
    random_init: Annotated[bool, typer.Option("--random-init", help=RANDOM_INIT_HELP)] = False,
    progress: Annotated[bool, typer.Option(help="Show the progress bar.")] = True,
) -> None:
    """Generate try-on images as the official inference does (PLMS, 50 steps, CFG 1.0), batched.

    Writes OUT/{pair|unpair}/{person}_{cloth}.jpg (model size), OUT/grid_{pair|unpair}.jpg (person | garment |
    agnostic | result) and OUT/samples.json (settings and test lists, read by `vitontrain evaluate`).

      vitontrain sample out/shards out/tryon --checkpoint ckpts/VITONHD.ckpt
    """
    # imported when the command runs (they load torch): `vitontrain --help` stays fast
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from vitonprep import ConfigError
    from vitontrain.checkpoints import CheckpointError
    from vitontrain.sampling.inference import MissingFileError, SamplingConfig
    from vitontrain.sampling.run import load_sampling_model, model_size, sample_dataset
    from vitontrain.sampling.schedule import make_timesteps
    from vitontrain.sampling.sources import iter_samples, source_kind

    modes = ("paired", "unpaired") if mode is Mode.all else (mode.value,)
    if threads:
        import torch
        torch.set_num_threads(threads)
    try:
        cfg = SamplingConfig(sampler=sampler.value, steps=steps, eta=eta, guidance_scale=guidance_scale,
                             start=start.value, repaint=repaint, precision=precision.value, seed=seed)
        make_timesteps(steps)  # an impossible grid fails here, before the model is built
        kind = source_kind(source)
        model = load_sampling_model(checkpoint, config, device, random_init=random_init)
        default_h, default_w = model_size(checkpoint, config)
    except (MissingFileError, FileNotFoundError, ValueError, CheckpointError, ConfigError) as exc:
        raise fail(str(exc)) from exc
    height, width = height or default_h, width or default_w
    try:
        total = sum(1 for _ in iter_samples(source, modes, split, limit)) if kind == "shards" else None
    except (FileNotFoundError, ValueError) as exc:  # a damaged shard: named with the sample in the message
        raise fail(str(exc), 1) from exc
    say(f"{kind} {source} → {out}: {cfg.sampler} {steps} steps, CFG {guidance_scale}, start "
        f"{cfg.start}{', repaint' if repaint else ''}, {height}x{width}")
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=console, disable=not progress) as bar:
        task = bar.add_task("images", total=total)
        steps_task = bar.add_task("steps of the batch", total=steps)
        try:
            report = sample_dataset(model, source, out, cfg, height, width, modes, batch_size, limit, split,
                                    grid_rows, on_batch=lambda n: bar.advance(task, n),
                                    on_step=lambda i, n: bar.update(steps_task, completed=i + 1, total=n),
                                    extra_manifest={"checkpoint": str(checkpoint) if checkpoint else None,
                                                    "config": str(config) if config else None,  # None: default
                                                    "random_init": random_init})
        except (FileNotFoundError, ValueError, KeyError) as exc:
            raise fail(str(exc), 1) from exc
    if report.count == 0:
        raise fail(f"no {' or '.join(modes)} samples in {source}", 1)
    skipped = f", {len(report.skipped)} skipped (see the warnings above)" if report.skipped else ""
    say(f"{report.count} images in {report.seconds:.1f} s ({report.seconds_per_image:.2f} s/image){skipped} → {out}",
        "green")
