"""The LightningModule around :class:`StableVITONModel`: loss, optimiser, logging, official checkpoint layout.

Checkpoints keep the official key names: the model lives under ``self.net`` but the ``state_dict`` written into a
``.ckpt`` has the ``net.`` prefix removed. The frozen tensors are left out of it (``vitontrain.train.weights``:
they never change and are rebuilt from the run's init files); the resolved config and the list of what was left
out go under ``checkpoint["vitontrain"]``. On resume the left-out tensors are taken from the model in memory, which
was built from the same config, after checking it holds the same frozen weights.

Every random draw of a training step (timestep, noise, CFG dropout, VAE posterior samples) comes from a generator
seeded by (seed, epoch, batch index, rank): the draws do not depend on how many steps ran in this process, which is
what makes kill-and-resume bit-exact on CPU (on GPU also set ``train.deterministic: true``; cuDNN/cuBLAS kernels
are otherwise free to differ run to run).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from typing import Any

import pytorch_lightning as pl
import torch

from vitontrain.checkpoints import CheckpointError
from vitontrain.data.transforms import normalise_batch
from vitontrain.models.stableviton import StableVITONModel
from vitontrain.train.config import TrainConfig
from vitontrain.train.weights import RunInfo, frozen_info

logger = logging.getLogger(__name__)

PREFIX = "net."


def step_seed(*parts: int) -> int:
    """A 63-bit seed from integers (stable across processes and Python versions, unlike ``hash``)."""
    digest = hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


class StableVITONSystem(pl.LightningModule):
    def __init__(self, net: StableVITONModel, config: TrainConfig, run_info: RunInfo | None = None):
        """``run_info``: the resolved config and frozen keys of the run; without it checkpoints hold every tensor
        and no config (the layout before slim checkpoints)."""
        super().__init__()
        self.net = net
        self.config = config
        self.run_info = run_info

    # ------------------------------------------------------------------------------------------------- training
    def step_generator(self, batch_idx: int) -> torch.Generator:
        # CPU generator on CPU; on CUDA the draws are made on the GPU (the model reads generator.device)
        device = self.device if self.device.type == "cuda" else torch.device("cpu")
        seed = step_seed(self.config.seed, self.current_epoch, batch_idx, self.global_rank)
        return torch.Generator(device=device).manual_seed(seed)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        out = self.net.training_loss(batch, generator=self.step_generator(batch_idx))
        batch_size = batch["image"].shape[0]
        self.log("train/loss", out.loss.detach(), prog_bar=True, batch_size=batch_size)
        self.log("train/loss_simple", out.loss_simple, batch_size=batch_size)
        if out.loss_atv is not None:
            self.log("train/loss_atv", out.loss_atv, batch_size=batch_size)
        self.log("train/uncond", float(out.uncond), batch_size=batch_size)
        return out.loss

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        return normalise_batch(batch)  # the stream ships uint8; convert on the device

    def configure_optimizers(self) -> torch.optim.Optimizer:
        params = self.net.optimizer_parameters()
        logger.info("optimiser: AdamW lr %.2e over %d tensors (%.1f M parameters)", self.config.lr, len(params),
                    sum(p.numel() for p in params) / 1e6)
        # fused: one kernel for the whole update on CUDA instead of a few per tensor
        return torch.optim.AdamW(params, lr=self.config.lr, betas=tuple(self.config.betas),
                                 weight_decay=self.config.weight_decay, fused=self.device.type == "cuda" or None)

    # ------------------------------------------------------------------------------------------ checkpoint layout
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint["state_dict"]
        dropped = set(self.run_info.dropped) if self.run_info is not None else set()
        renamed = ((k[len(PREFIX):] if k.startswith(PREFIX) else k, v) for k, v in state.items())
        checkpoint["state_dict"] = type(state)((k, v) for k, v in renamed if k not in dropped)
        checkpoint["vitontrain"] = {"layout": "official", "train": dataclasses.asdict(self.config),
                                    **(self.run_info.checkpoint_entries() if self.run_info is not None else {})}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint["state_dict"]
        if checkpoint.get("vitontrain", {}).get("layout") == "official" or not any(k.startswith(PREFIX)
                                                                                    for k in state):
            state = checkpoint["state_dict"] = type(state)((PREFIX + k, v) for k, v in state.items())
        frozen = frozen_info(checkpoint, "the resumed checkpoint")
        if frozen is None:
            return
        ours = self.run_info
        if ours is None or frozen.fingerprint is None or (ours.fingerprint is not None
                                                          and frozen.fingerprint != ours.fingerprint):
            raise CheckpointError("the resumed checkpoint left its frozen weights out, and the model built for this "
                                  "run holds other frozen weights (init.* files or seed changed since it was "
                                  "written); resume with the init files of the original run")
        own = self.state_dict()
        missing = [k for k in frozen.dropped if PREFIX + k not in own]
        if missing:
            raise CheckpointError(f"the resumed checkpoint left out {len(missing)} keys this model does not have, "
                                  f"e.g. {missing[:3]}")
        for k in frozen.dropped:  # the model's own tensors: loading them back changes nothing
            state[PREFIX + k] = own[PREFIX + k]
