"""The LightningModule around :class:`StableVITONModel`: loss, optimiser, logging, official checkpoint layout.

Checkpoints keep the official key layout: the model lives under ``self.net`` but the ``state_dict`` written into a
``.ckpt`` has the ``net.`` prefix removed, so our checkpoints load into the official code (and official ones into
ours, strictly) without conversion.

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

from vitontrain.data.transforms import normalise_batch
from vitontrain.models.stableviton import StableVITONModel
from vitontrain.train.config import TrainConfig

logger = logging.getLogger(__name__)

PREFIX = "net."


def step_seed(*parts: int) -> int:
    """A 63-bit seed from integers (stable across processes and Python versions, unlike ``hash``)."""
    digest = hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


class StableVITONSystem(pl.LightningModule):
    def __init__(self, net: StableVITONModel, config: TrainConfig):
        super().__init__()
        self.net = net
        self.config = config

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
        checkpoint["state_dict"] = type(state)((k[len(PREFIX):] if k.startswith(PREFIX) else k, v)
                                               for k, v in state.items())
        checkpoint["vitontrain"] = {"layout": "official", "train": dataclasses.asdict(self.config)}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint["state_dict"]
        if checkpoint.get("vitontrain", {}).get("layout") == "official" or not any(k.startswith(PREFIX)
                                                                                    for k in state):
            checkpoint["state_dict"] = type(state)((PREFIX + k, v) for k, v in state.items())
