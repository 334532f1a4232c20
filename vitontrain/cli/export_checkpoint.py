"""`vitontrain export-checkpoint`: a training checkpoint as a full model file in the official layout."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vitontrain.cli._common import fail, say


def export_checkpoint(
    checkpoint: Annotated[Path, typer.Argument(help="A vitontrain fit checkpoint (last.ckpt, stepN.ckpt), or any "
                                                    "StableVITON checkpoint.")],
    out: Annotated[Path, typer.Argument(help="Output file: .safetensors, or .ckpt/.pth/.pt (a weights-only torch "
                                             "file {'state_dict': ...}).")],
    ema: Annotated[bool, typer.Option(help="Export the EMA weights of the trained parameters (train.ema).")] = False,
) -> None:
    """Write the full StableVITON state dict (official key names, every tensor) of CHECKPOINT to OUT.

    Training checkpoints leave the frozen weights (VAE, CLIP, frozen UNet) out; they are rebuilt here from the
    init files of the run, as recorded in the checkpoint. The result loads strictly into the official code and
    needs nothing else.

      vitontrain export-checkpoint runs/stableviton/checkpoints/last.ckpt VITONHD_ours.safetensors --ema
    """
    # imported when the command runs (they load torch): `vitontrain --help` stays fast
    from vitonprep import ConfigError
    from vitontrain.checkpoints import CheckpointError
    from vitontrain.train.weights import export_checkpoint as export

    try:
        written = export(checkpoint, out, ema=ema)
    except (CheckpointError, ConfigError, FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from exc
    say(f"{written} ({written.stat().st_size / 1e6:.1f} MB){' — EMA weights' if ema else ''}", "green")
