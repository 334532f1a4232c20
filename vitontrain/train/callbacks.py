"""Training callbacks: EMA of the trained parameters, sample grids, step timing (data wait vs compute), the
resolved config written to the run folder."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytorch_lightning as pl
import torch
from PIL import Image

from vitontrain.sampling.inference import SamplingConfig, generate

logger = logging.getLogger(__name__)


class TrainedParamsEMA(pl.Callback):
    """Exponential moving average of the parameters the optimiser updates, updated after each optimiser step.

    Lightning's ``EMAWeightAveraging`` deep-copies the whole module; for StableVITON that is 1.84 B parameters, of
    which only ~355 M are trained. This keeps fp32 shadows of the trained ones only. Its state (shadows, decay,
    updates) is part of every checkpoint, so resume continues the same average.
    """

    def __init__(self, decay: float = 0.9999, every_n_steps: int = 1):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.every_n_steps = every_n_steps
        self.shadow: dict[str, torch.Tensor] = {}
        self.updates = 0
        self._last_step = 0  # global_step before the first optimiser step
        self._host_copy = True  # only rank 0 writes checkpoints: the others skip the device->host copy

    def _trained(self, pl_module: pl.LightningModule) -> dict[str, torch.nn.Parameter]:
        wanted = {id(p) for p in pl_module.net.optimizer_parameters()}
        return {n: p for n, p in pl_module.net.named_parameters() if id(p) in wanted}

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._host_copy = trainer.is_global_zero
        params = self._trained(pl_module)
        if self.shadow:  # restored from a checkpoint
            missing = sorted(set(params) - set(self.shadow))
            if missing:
                raise RuntimeError(f"EMA state in the checkpoint lacks {len(missing)} trained tensors, "
                                   f"e.g. {missing[0]}")
            self.shadow = {n: t.to(params[n].device) for n, t in self.shadow.items()}
        else:
            self.shadow = {n: p.detach().float().clone() for n, p in params.items()}

    @torch.no_grad()
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        step = trainer.global_step
        if step == self._last_step or step % self.every_n_steps:
            return  # no optimiser step happened (gradient accumulation) or not an update step
        self._last_step = step
        params = self._trained(pl_module)
        names = list(self.shadow)
        shadows = [self.shadow[n] for n in names]
        torch._foreach_lerp_(shadows, [params[n].detach().float() for n in names], 1.0 - self.decay)
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "updates": self.updates, "last_step": self._last_step,
                "shadow": {n: t.detach().cpu() if self._host_copy else t.detach() for n, t in self.shadow.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.decay, self.updates, self._last_step = state["decay"], state["updates"], state["last_step"]
        self.shadow = dict(state["shadow"])

    @contextlib.contextmanager
    def swapped_in(self, pl_module: pl.LightningModule) -> Iterator[None]:
        """Temporarily load the EMA weights into the model (for sampling)."""
        params = self._trained(pl_module)
        backup = {n: p.detach().clone() for n, p in params.items()}
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(self.shadow[n].to(p.dtype))
        try:
            yield
        finally:
            with torch.no_grad():
                for n, p in params.items():
                    p.copy_(backup[n])


def to_uint8_hwc(images: torch.Tensor) -> list[np.ndarray]:
    """[B,3,H,W] in [-1,1] → list of HWC uint8."""
    arr = ((images.detach().float().cpu().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return [a.permute(1, 2, 0).numpy() for a in arr]


def grid_image(rows: list[list[np.ndarray]]) -> Image.Image:
    return Image.fromarray(np.concatenate([np.concatenate(row, axis=1) for row in rows], axis=0))


class SampleGrids(pl.Callback):
    """Every N optimiser steps (rank 0): DDIM samples for fixed paired and unpaired preview batches, written as
    ``{out}/samples/step{N:07d}_{paired|unpaired}.jpg`` with columns person | garment | agnostic | result."""

    def __init__(self, out_dir: Path, every_n_steps: int, count: int, steps: int, guidance: float, seed: int = 0):
        self.out_dir = Path(out_dir) / "samples"
        self.every_n_steps = every_n_steps
        self.count = count
        self.steps = steps
        self.guidance = guidance
        self.seed = seed
        self._previews: dict[str, dict[str, Any]] = {}
        self._last_step = -1

    def _preview(self, trainer: pl.Trainer, kind: str) -> dict[str, Any]:
        if kind not in self._previews:
            self._previews[kind] = trainer.datamodule.preview_batch(self.count, unpaired=kind == "unpaired")
        return self._previews[kind]

    def write(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> list[Path]:
        cfg = SamplingConfig(sampler="ddim", steps=self.steps, guidance_scale=self.guidance, start="person",
                             seed=self.seed)
        ema = next((c for c in trainer.callbacks if isinstance(c, TrainedParamsEMA)), None)
        swap = ema.swapped_in(pl_module) if ema is not None and ema.shadow else contextlib.nullcontext()
        # bf16-mixed runs store frozen VAE/CLIP weights in bf16 (weights.store_frozen_bf16): sample under the run's
        # autocast too. Other precisions sample in fp32 as before.
        amp = (trainer.precision_plugin.forward_context() if trainer.precision == "bf16-mixed"
               else contextlib.nullcontext())
        written = []
        self.out_dir.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        was_training = pl_module.training
        pl_module.eval()
        try:
            with swap, amp:
                for kind in ("paired", "unpaired"):
                    batch = self._preview(trainer, kind)
                    generator = torch.Generator().manual_seed(self.seed)
                    result = generate(pl_module.net, batch, cfg, generator).images
                    rows = [list(cols) for cols in zip(to_uint8_hwc(batch["image"]), to_uint8_hwc(batch["cloth"]),
                                                       to_uint8_hwc(batch["agn"]), to_uint8_hwc(result), strict=True)]
                    path = self.out_dir / f"step{trainer.global_step:07d}_{kind}.jpg"
                    grid_image(rows).save(path, quality=90)
                    written.append(path)
        finally:
            pl_module.train(was_training)
        logger.info("sample grids in %.1f s: %s", time.perf_counter() - start, ", ".join(str(p) for p in written))
        return written

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        step = trainer.global_step
        if not self.every_n_steps or step == self._last_step or step % self.every_n_steps or step == 0:
            return
        self._last_step = step
        if trainer.is_global_zero:
            self.write(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.every_n_steps and trainer.is_global_zero and self._last_step != trainer.global_step:
            self.write(trainer, pl_module)


class StepTiming(pl.Callback):
    """Splits each training batch's wall time into data wait (loader) and compute (step incl. optimiser)."""

    def __init__(self) -> None:
        self.data_wait: list[float] = []
        self.compute: list[float] = []
        self._batch_end: float | None = None
        self._batch_start = 0.0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._batch_end = time.perf_counter()

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        self._batch_start = time.perf_counter()
        if self._batch_end is not None:
            self.data_wait.append(self._batch_start - self._batch_end)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if pl_module.device.type == "cuda":  # kernels run asynchronously: wait for the step to really end
            torch.cuda.synchronize(pl_module.device)
        self._batch_end = time.perf_counter()
        self.compute.append(self._batch_end - self._batch_start)


class RunConfigFile(pl.Callback):
    """Writes the run's resolved config (YAML) to the run folder once training is set up (rank 0), replacing the
    previous run's on resume: each checkpoint carries the config it was trained with."""

    def __init__(self, path: Path, text: str):
        self.path = Path(path)
        self.text = text

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if not trainer.is_global_zero:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(self.text, encoding="utf-8")
        os.replace(tmp, self.path)  # a reader never sees half a file
