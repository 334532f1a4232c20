"""``train.gradient_checkpointing: auto``: checkpointing off when the GPU holds the step without it.

Checkpointing saves activation memory by running every checkpointed block's forward twice; it is worth that only
when memory is short. The estimate is the paper count of docs/training.md ("GPU memory"), not a measurement (no GPU
is lent to this project): fp32 master weights of the 1.84 B parameters, gradients and AdamW moments of the 355 M
trained ones and the EMA copy (≈ 12.2 GiB together) plus the CUDA context and bf16 casts, ≈ 14 GiB in all (issue 20
counted 16–18 GiB at batch 4 with checkpointing on), plus ≈ 0.75 GiB of bf16 activations per sample at 512×384
without checkpointing, with a 20 % margin for the allocator and cuDNN workspaces (a smaller model only needs
less). On the CPU (host memory, shared with the data loader) the YAML's model setting stays.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Callable

import torch

from vitontrain.train.config import FitConfig

logger = logging.getLogger(__name__)

GIB = 1024 ** 3
#: weights, trained gradients, AdamW moments, EMA of the full model (docs/training.md), CUDA context, casts; GiB
STATIC_GIB = 14.0
#: bf16 activations per sample at 512×384 without checkpointing, GiB (issue 20's fake-tensor count: ~3 GiB at 4)
ACTIVATIONS_GIB_PER_SAMPLE = 0.75
#: allocator fragmentation and cuDNN workspaces
MARGIN = 1.2


def memory_without_checkpointing(batch_size: int) -> float:
    """Estimated peak GPU memory (bytes) of one full-size bf16-mixed step at ``batch_size`` without checkpointing."""
    return (STATIC_GIB + ACTIVATIONS_GIB_PER_SAMPLE * batch_size) * MARGIN * GIB


def smallest_gpu_memory() -> int | None:
    """Total memory (bytes) of the smallest visible CUDA device, or None without one."""
    if not torch.cuda.is_available():
        return None
    return min(torch.cuda.get_device_properties(i).total_memory for i in range(torch.cuda.device_count()))


def resolve_gradient_checkpointing(cfg: FitConfig,
                                   gpu_memory: Callable[[], int | None] = smallest_gpu_memory) -> FitConfig:
    """``cfg`` with ``train.gradient_checkpointing: auto`` decided (True/False) for this machine, or left to the
    model config (None) on the CPU. Every rank of a run sees the same devices, so every rank decides alike."""
    if cfg.train.gradient_checkpointing != "auto":
        return cfg
    if cfg.train.strategy == "ddp_fork":  # asking CUDA for the memory would initialise it, which forking forbids
        logger.info("gradient checkpointing: auto -> as the model config says (ddp_fork: CUDA not queried)")
        return replace(cfg, train=replace(cfg.train, gradient_checkpointing=None))
    total = gpu_memory() if cfg.train.accelerator in ("auto", "gpu", "cuda") else None
    if total is None:
        logger.info("gradient checkpointing: auto -> as the model config says (no GPU)")
        decided = None
    else:
        need = memory_without_checkpointing(cfg.data.batch_size)
        decided = need > total
        logger.info("gradient checkpointing: auto -> %s (batch %d needs ≈ %.1f GiB without it, the GPU has %.1f GiB)",
                    "on" if decided else "off", cfg.data.batch_size, need / GIB, total / GIB)
    return replace(cfg, train=replace(cfg.train, gradient_checkpointing=decided))
