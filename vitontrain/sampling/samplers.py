"""DDIM and PLMS over an ε-prediction function, with the official update rules (ldm ``ddim.py``, ``plms.py``).

A sampler knows nothing about StableVITON: it takes ``eps_fn(x, t) -> ε`` (``t`` a [B] long tensor) and a start
latent, so tests can drive it with an oracle that returns the true noise.

* DDIM: ``x̂0 = (x − √(1−ᾱ_t) ε) / √ᾱ_t``; ``x_prev = √ᾱ_prev x̂0 + √(1−ᾱ_prev−σ²) ε + σ z``.
* PLMS (pseudo linear multistep): the first step is a pseudo improved Euler step (two ε evaluations, the second at
  the next grid time), then Adams–Bashforth of order 2, 3 and 4 on the stored ε history; the update itself is the
  DDIM update with σ = 0 (PLMS requires η = 0). 50 steps cost 51 ε evaluations.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import torch

from vitontrain.sampling.schedule import StepSchedule

logger = logging.getLogger(__name__)

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
StepCallback = Callable[[int, int], None]  # (step index from 0, number of steps)

SAMPLERS = ("plms", "ddim")


@dataclass
class SamplerOutput:
    x: torch.Tensor        # the final latent (at ᾱ of the last grid step's ᾱ_prev = ᾱ[0], as officially)
    pred_x0: torch.Tensor  # the x̂0 estimate of the last step
    nfe: int               # number of ε evaluations


def _update(x: torch.Tensor, eps: torch.Tensor, a_t: float, a_prev: float, sigma: float,
            generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """One DDIM update from ᾱ_t to ᾱ_prev; returns (x_prev, x̂0)."""
    pred_x0 = (x - (1.0 - a_t) ** 0.5 * eps) / a_t ** 0.5
    dir_xt = max(1.0 - a_prev - sigma ** 2, 0.0) ** 0.5 * eps
    x_prev = a_prev ** 0.5 * pred_x0 + dir_xt
    if sigma > 0.0:
        gdev = x.device if generator is None else generator.device
        noise = torch.randn(x.shape, generator=generator, device=gdev, dtype=torch.float32).to(x.device, x.dtype)
        x_prev = x_prev + sigma * noise
    return x_prev, pred_x0


def _t(value: int, x: torch.Tensor) -> torch.Tensor:
    return torch.full((x.shape[0],), int(value), device=x.device, dtype=torch.long)


def ddim_sample(eps_fn: EpsFn, x_T: torch.Tensor, schedule: StepSchedule, generator: torch.Generator | None = None,
                callback: StepCallback | None = None) -> SamplerOutput:
    """Run DDIM from ``x_T`` down the grid of ``schedule`` (η is baked into ``schedule.sigmas``)."""
    x = x_T
    n = schedule.steps
    pred_x0 = x
    for i in range(n):
        index = n - 1 - i
        eps = eps_fn(x, _t(schedule.timesteps[index], x))
        x, pred_x0 = _update(x, eps.to(x.dtype), float(schedule.alphas[index]), float(schedule.alphas_prev[index]),
                             float(schedule.sigmas[index]), generator)
        if callback is not None:
            callback(i, n)
    return SamplerOutput(x, pred_x0, n)


def plms_sample(eps_fn: EpsFn, x_T: torch.Tensor, schedule: StepSchedule,
                callback: StepCallback | None = None) -> SamplerOutput:
    """Run PLMS from ``x_T`` down the grid of ``schedule`` (its σ must be zero: PLMS is deterministic)."""
    if bool((schedule.sigmas != 0).any()):
        raise ValueError("PLMS requires eta = 0")
    x = x_T
    n = schedule.steps
    old_eps: list[torch.Tensor] = []
    pred_x0 = x
    nfe = 0
    for i in range(n):
        index = n - 1 - i
        a_t, a_prev = float(schedule.alphas[index]), float(schedule.alphas_prev[index])
        eps = eps_fn(x, _t(schedule.timesteps[index], x)).to(x.dtype)
        nfe += 1
        if not old_eps:
            # Pseudo improved Euler: ε at the Euler-predicted next point, averaged with ε here. The "next" time is
            # the next grid time (the same grid time again on a 1-step grid, as officially).
            x_next, _ = _update(x, eps, a_t, a_prev, 0.0, None)
            next_index = max(index - 1, 0)
            eps_next = eps_fn(x_next, _t(schedule.timesteps[next_index], x)).to(x.dtype)
            nfe += 1
            eps_prime = (eps + eps_next) / 2
        elif len(old_eps) == 1:
            eps_prime = (3 * eps - old_eps[-1]) / 2
        elif len(old_eps) == 2:
            eps_prime = (23 * eps - 16 * old_eps[-1] + 5 * old_eps[-2]) / 12
        else:
            eps_prime = (55 * eps - 59 * old_eps[-1] + 37 * old_eps[-2] - 9 * old_eps[-3]) / 24
        x, pred_x0 = _update(x, eps_prime, a_t, a_prev, 0.0, None)
        old_eps.append(eps)
        if len(old_eps) > 3:
            old_eps.pop(0)
        if callback is not None:
            callback(i, n)
    return SamplerOutput(x, pred_x0, nfe)


def run_sampler(name: str, eps_fn: EpsFn, x_T: torch.Tensor, schedule: StepSchedule,
                generator: torch.Generator | None = None, callback: StepCallback | None = None) -> SamplerOutput:
    if name == "plms":
        return plms_sample(eps_fn, x_T, schedule, callback)
    if name == "ddim":
        return ddim_sample(eps_fn, x_T, schedule, generator, callback)
    raise ValueError(f"unknown sampler {name!r} (one of {SAMPLERS})")
