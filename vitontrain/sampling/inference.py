"""Try-on inference on model batches: start latent, classifier-free guidance, sampler, decode, repaint.

Official inference (StableVITON's ``inference.py``) = ``SamplingConfig()`` defaults: PLMS, 50 steps, uniform grid,
η = 0, CFG scale 1.0 (only the conditional branch runs), start latent ``q_sample(z_person, t=999)``, no repaint.
Deviations, on purpose:

* The cloth hint latent is VAE-encoded once per batch and reused at every step (officially ``apply_model``
  re-encodes, and re-samples the posterior, at every call; the posterior's spread is tiny and the VAE encoder at
  512×384 costs a large share of a UNet call).
* Randomness (start noise, VAE posterior samples, DDIM σ noise) comes from one ``torch.Generator`` seeded per batch
  (``seed + batch index``): a run is reproducible for the same seed, batch size and sample order.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from vitontrain.checkpoints import load_stableviton
from vitontrain.models.instantiate import build_model, resolve_train_config
from vitontrain.sampling.samplers import SAMPLERS, StepCallback, run_sampler
from vitontrain.sampling.schedule import DISCRETIZATIONS, step_schedule
from vitontrain.train.weights import read_model_state

logger = logging.getLogger(__name__)

STARTS = ("person", "noise")
PRECISIONS = ("auto", "bf16", "fp32")
#: the official start: the person latent noised to the last training timestep
START_T = 999


@dataclass(frozen=True)
class SamplingConfig:
    sampler: str = "plms"
    steps: int = 50
    eta: float = 0.0
    discretize: str = "uniform"
    guidance_scale: float = 1.0
    start: str = "person"
    repaint: bool = False
    precision: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler {self.sampler!r}: choose one of {SAMPLERS}")
        if self.discretize not in DISCRETIZATIONS:
            raise ValueError(f"discretize {self.discretize!r}: choose one of {DISCRETIZATIONS}")
        if self.start not in STARTS:
            raise ValueError(f"start {self.start!r}: choose one of {STARTS}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision {self.precision!r}: choose one of {PRECISIONS}")
        if self.steps < 1:
            raise ValueError("steps must be >= 1")
        if self.sampler == "plms" and self.eta != 0.0:
            raise ValueError("PLMS requires eta = 0 (use --sampler ddim for eta > 0)")
        if self.eta < 0:
            raise ValueError("eta must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 autocast dtype or None. ``auto`` = bf16 on a CUDA device that supports it, fp32 elsewhere (CPU bf16
    autocast is only fast on CPUs with native bf16 instructions; ask for it with ``bf16``)."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@dataclass
class GenerateOutput:
    images: torch.Tensor      # [B,3,H,W] float32 in [-1,1] on CPU (after repaint when asked)
    nfe: int                  # UNet evaluations per sample (both CFG branches counted)


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def generate(model: Any, batch: Mapping[str, Any], cfg: SamplingConfig, generator: torch.Generator | None = None,
             callback: StepCallback | None = None) -> GenerateOutput:
    """Sample try-on images for one model batch (the StableVITON batch contract, NCHW tensors)."""
    device = model_device(model)
    batch = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
    amp = autocast_dtype(cfg.precision, device)
    gdev = device if generator is None else generator.device

    inp = model.get_input(batch, generator, need_atv=False)
    b = inp.z0.shape[0]
    hint = model.get_first_stage_encoding(inp.cloth, generator)
    with _autocast(device, amp):
        ctx_c = model.conditional_context(inp.cloth)
    ctx_u = model.unconditional_context(b) if cfg.guidance_scale != 1.0 else None

    noise = torch.randn(inp.z0.shape, generator=generator, device=gdev).to(device)
    if cfg.start == "person":
        t = torch.full((b,), START_T, device=device, dtype=torch.long)
        x_T = model.q_sample(inp.z0, t, noise)
    else:
        x_T = noise

    scale = cfg.guidance_scale
    fsc = inp.first_stage_cond

    def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        with _autocast(device, amp):
            e_c, _ = model.apply_model(x, t, fsc, hint, ctx_c)
            if ctx_u is None:
                return e_c.float()
            # Two separate passes, as officially (not batched): ε = ε_u + s (ε_c − ε_u).
            e_u, _ = model.apply_model(x, t, fsc, hint, ctx_u.to(ctx_c.dtype))
        return (e_u.float() + scale * (e_c.float() - e_u.float()))

    schedule = step_schedule(model.alphas_cumprod, cfg.steps, cfg.eta, cfg.discretize)
    out = run_sampler(cfg.sampler, eps_fn, x_T.float(), schedule, generator, callback)
    with _autocast(device, amp):
        images = model.decode_first_stage(out.x)
    images = images.float().clamp(-1.0, 1.0)
    if cfg.repaint:
        # Pixel-space blend with the keep mask (1 = visible person region), official ``--repaint``.
        keep = batch["agn_mask"].float()
        images = batch["image"].float() * keep + images * (1.0 - keep)
    nfe = out.nfe * (2 if ctx_u is not None else 1)
    return GenerateOutput(images.cpu(), nfe)


def to_uint8(images: torch.Tensor) -> "Any":
    """[B,3,H,W] in [-1,1] → numpy uint8 [B,H,W,3]."""
    return ((images.clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


# ------------------------------------------------------------------------------------------------ model loading
class MissingFileError(FileNotFoundError):
    """A checkpoint, config or weights file the user named does not exist."""


def resolve_model_config(name_or_path: str | Path) -> Path:
    """A YAML path, or the name of one in ``pipelines/train/`` (``stableviton``, ``tiny``)."""
    try:
        return resolve_train_config(name_or_path)
    except FileNotFoundError as exc:
        raise MissingFileError(f"model {exc}") from None


def load_inference_model(config: str | Path, checkpoint: str | Path | None, device: str | torch.device = "cpu",
                         random_init: bool = False, sample_posterior: bool | None = None) -> Any:
    """Build the model of ``config`` (a path or a name in ``pipelines/train/``) and load ``checkpoint`` (strict).

    ``random_init`` keeps random weights instead (tests and benchmarks only); without it a checkpoint is required.
    """
    config = resolve_model_config(config)
    if checkpoint is None and not random_init:
        raise MissingFileError("no checkpoint given: pass --checkpoint (or --random-init for a smoke run)")
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise MissingFileError(f"checkpoint not found: {checkpoint}")
    # read first (weights only, memory-mapped): an unsafe or unreadable file is refused before the model is built
    # official, safetensors or a vitontrain checkpoint (a slim one completed from its recorded init files)
    state = read_model_state(checkpoint) if checkpoint is not None else None
    model = build_model(config)
    if state is not None:
        load_stableviton(model, state, strict=True, source=str(checkpoint))
    else:
        logger.warning("random initialisation: outputs are noise-like (smoke run, not a try-on)")
    if sample_posterior is not None:
        model.sample_posterior = sample_posterior
    model.configure_trainable("none")
    return model.to(device).eval()

ProgressFn = Callable[[int], None]
