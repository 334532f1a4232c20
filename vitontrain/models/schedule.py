"""DDPM noise schedule buffers, with the official names and values (ldm ``DDPM.register_schedule``).

``beta_schedule="linear"`` is ldm's: ``betas = linspace(√start, √end, T)²`` in float64 (SD's "scaled_linear"),
stored as float32. ``lvlb_weights`` is kept non-persistent, as officially (not in the state dict).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

#: The 13 persistent schedule buffers, in the official registration order.
SCHEDULE_BUFFERS = (
    "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod",
    "posterior_variance", "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2", "logvar",
)


def make_beta_schedule(schedule: str, timesteps: int, linear_start: float, linear_end: float) -> np.ndarray:
    if schedule == "linear":
        return np.linspace(linear_start ** 0.5, linear_end ** 0.5, timesteps, dtype=np.float64) ** 2
    raise ValueError(f"unknown beta_schedule {schedule!r} (StableVITON uses ldm's 'linear')")


def schedule_arrays(timesteps: int = 1000, linear_start: float = 0.00085, linear_end: float = 0.012,
                    beta_schedule: str = "linear", logvar_init: float = 0.0) -> dict[str, np.ndarray]:
    """All schedule arrays (float64 numpy), keyed by buffer name, plus ``lvlb_weights`` (ε-parameterisation)."""
    betas = make_beta_schedule(beta_schedule, timesteps, linear_start, linear_end)
    alphas = 1.0 - betas
    ac = np.cumprod(alphas, axis=0)
    ac_prev = np.append(1.0, ac[:-1])
    post_var = betas * (1.0 - ac_prev) / (1.0 - ac)
    lvlb = np.empty_like(betas)
    lvlb[1:] = betas[1:] ** 2 / (2 * post_var[1:] * alphas[1:] * (1 - ac[1:]))
    lvlb[0] = lvlb[1]  # posterior_variance[0] is 0
    return {
        "betas": betas,
        "alphas_cumprod": ac,
        "alphas_cumprod_prev": ac_prev,
        "sqrt_alphas_cumprod": np.sqrt(ac),
        "sqrt_one_minus_alphas_cumprod": np.sqrt(1.0 - ac),
        "log_one_minus_alphas_cumprod": np.log(1.0 - ac),
        "sqrt_recip_alphas_cumprod": np.sqrt(1.0 / ac),
        "sqrt_recipm1_alphas_cumprod": np.sqrt(1.0 / ac - 1),
        "posterior_variance": post_var,
        "posterior_log_variance_clipped": np.log(np.maximum(post_var, 1e-20)),
        "posterior_mean_coef1": betas * np.sqrt(ac_prev) / (1.0 - ac),
        "posterior_mean_coef2": (1.0 - ac_prev) * np.sqrt(alphas) / (1.0 - ac),
        "logvar": np.full(timesteps, logvar_init, dtype=np.float64),
        "lvlb_weights": lvlb,
    }


def register_schedule(module: nn.Module, **kwargs) -> None:
    """Register the 13 persistent buffers (float32) and the non-persistent ``lvlb_weights`` on ``module``."""
    arrays = schedule_arrays(**kwargs)
    for name in SCHEDULE_BUFFERS:
        module.register_buffer(name, torch.tensor(arrays[name], dtype=torch.float32))
    module.register_buffer("lvlb_weights", torch.tensor(arrays["lvlb_weights"], dtype=torch.float32),
                           persistent=False)


def extract(buffer: torch.Tensor, t: torch.Tensor, ndim: int) -> torch.Tensor:
    """``buffer[t]`` shaped [B, 1, …] for broadcasting against an ``ndim``-D tensor."""
    return buffer.gather(0, t).reshape(t.shape[0], *([1] * (ndim - 1)))
