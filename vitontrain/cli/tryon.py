"""`vitontrain tryon PERSON CLOTH`: one photo and one garment in, one try-on image out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from vitonprep import ConfigError, VitonprepError
from vitontrain.cli._common import console, fail, say
from vitontrain.cli.sample import RANDOM_INIT_HELP, SAMPLE_CONFIG_HELP, Precision, Sampler, Start


def tryon(
    person: Annotated[Path, typer.Argument(help="Person photo (JPEG/PNG/WebP, any size).")],
    cloth: Annotated[Path, typer.Argument(help="In-shop garment photo.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output image (.jpg/.png).")] = Path("tryon.jpg"),
    checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", "-k", help="StableVITON checkpoint.")] = None,
    config: Annotated[Optional[str], typer.Option("--config", "-c", help=SAMPLE_CONFIG_HELP)] = None,
    pipeline: Annotated[str, typer.Option("--pipeline", "-p", help="vitonprep pipeline YAML or name "
                                                                   "(pipelines/).")] = "default",
    category: Annotated[Optional[str], typer.Option(help="upper_body | lower_body | dresses (overrides the "
                                                         "pipeline).")] = None,
    sampler: Annotated[Sampler, typer.Option()] = Sampler.plms,
    steps: Annotated[int, typer.Option(min=1)] = 50,
    eta: Annotated[float, typer.Option(min=0.0)] = 0.0,
    guidance_scale: Annotated[float, typer.Option("--guidance-scale", "--cfg")] = 1.0,
    start: Annotated[Start, typer.Option()] = Start.person,
    repaint: Annotated[bool, typer.Option()] = False,
    height: Annotated[Optional[int], typer.Option(min=64, help="Model input height, a multiple of 64. Default: "
                                                          "the size the model was trained at (256 for tiny, 512 "
                                                          "for stableviton).")] = None,
    width: Annotated[Optional[int], typer.Option(min=64, help="Model input width. Default: as --height (192 / "
                                                         "384).")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    precision: Annotated[Precision, typer.Option()] = Precision.auto,
    threads: Annotated[Optional[int], typer.Option(min=1, help="CPU threads for torch (on a busy machine 1 can "
                                                           "be much faster than more).")] = None,
    device: Annotated[str, typer.Option()] = "cpu",
    random_init: Annotated[bool, typer.Option("--random-init", help=RANDOM_INIT_HELP)] = False,
    progress: Annotated[bool, typer.Option(help="Show progress over the sampling steps.")] = True,
) -> None:
    """Dress PERSON in CLOTH: vitonprep's pipeline prepares the pair on the fly (pose, parsing, DensePose,
    agnostic), then StableVITON samples one image (official settings by default).

      vitontrain tryon me.jpg shirt.jpg --checkpoint ckpts/VITONHD.ckpt -o me_in_shirt.jpg
    """
    # Imported when the command runs: they pull in torch and transformers (~10 s of imports on a loaded 2-core
    # machine), which `vitontrain --help` and the other commands should not pay for. Not an import cycle.
    import torch
    from PIL import Image

    from vitontrain.checkpoints import CheckpointError
    from vitontrain.sampling.inference import MissingFileError, SamplingConfig
    from vitontrain.sampling.run import load_sampling_model, model_size
    from vitontrain.sampling.schedule import make_timesteps
    from vitontrain.tryon import tryon as run_tryon

    if threads:
        torch.set_num_threads(threads)
    try:
        cfg = SamplingConfig(sampler=sampler.value, steps=steps, eta=eta, guidance_scale=guidance_scale,
                             start=start.value, repaint=repaint, precision=precision.value, seed=seed)
        make_timesteps(steps)
        for p, what in ((person, "person photo"), (cloth, "garment photo")):
            if not p.is_file():
                raise MissingFileError(f"{what} not found: {p}")
        if out.suffix.lower() not in (".jpg", ".jpeg", ".png"):
            raise ValueError(f"--out {out}: use a .jpg or .png file name")
        model = load_sampling_model(checkpoint, config, device, random_init=random_init)
        default_h, default_w = model_size(checkpoint, config)
    except (MissingFileError, FileNotFoundError, ValueError, CheckpointError, ConfigError) as exc:
        raise fail(str(exc)) from exc
    height, width = height or default_h, width or default_w
    say(f"{person} + {cloth} → {out}: {cfg.sampler} {steps} steps, CFG {guidance_scale}, {height}x{width}")
    columns = [SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn()]
    with Progress(*columns, console=console, disable=not progress) as bar:
        task = bar.add_task("preparing the pair with vitonprep", total=None)

        def on_step(i: int, n: int) -> None:
            bar.update(task, description="sampling steps", completed=i + 1, total=n)

        try:
            result = run_tryon(model, person, cloth, cfg, height, width, pipeline, category, on_step)
        except VitonprepError as exc:  # the photo was rejected (no person, cut off, …) or a bad pipeline
            stage = getattr(exc, "stage", None)
            where = f"stage {stage!r} " if stage else ""
            raise fail(f"vitonprep {where}rejected the pair: {exc}", 1) from exc
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(result.image).save(out, quality=95)
    say(f"{out} ({result.image.shape[0]}x{result.image.shape[1]}): prepared in {result.seconds_prepare:.1f} s, "
        f"sampled in {result.seconds_sample:.1f} s", "green")
