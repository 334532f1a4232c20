"""Sub-sampled timestep grids and their ᾱ values, as the official ldm DDIM/PLMS samplers build them.

Official (``ldm.modules.diffusionmodules.util.make_ddim_timesteps`` with ``ddim_discretize="uniform"``): stride
``c = T // steps``, grid ``range(0, T, c) + 1`` — for 50 steps ``[1, 21, …, 981]``, visited in reverse. The "+1"
shift makes the final ᾱ_prev equal ᾱ at t=0 (0.99915), not 1. ``"quad"`` is the official alternative
(``(linspace(0, √(0.8T), steps)²).astype(int) + 1``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

DISCRETIZATIONS = ("uniform", "quad")


def make_timesteps(steps: int, num_train_timesteps: int = 1000, discretize: str = "uniform") -> np.ndarray:
    """The increasing grid of training timesteps visited by a ``steps``-step DDIM/PLMS sampler.

    As officially, a ``steps`` that does not divide T gives ``len(range(0, T, T // steps))`` grid points (e.g. 30
    steps → 31 points); the samplers run over the grid as it is."""
    if steps < 1 or steps > num_train_timesteps:
        raise ValueError(f"steps must be in [1, {num_train_timesteps}], got {steps}")
    if discretize == "uniform":
        c = num_train_timesteps // steps
        grid = np.asarray(list(range(0, num_train_timesteps, c)))
    elif discretize == "quad":
        grid = ((np.linspace(0, np.sqrt(num_train_timesteps * 0.8), steps)) ** 2).astype(int)
    else:
        raise ValueError(f"unknown discretization {discretize!r} (one of {DISCRETIZATIONS})")
    # The official "+1": the first step of the reverse process lands on ᾱ[0], not on ᾱ = 1.
    grid = grid + 1
    if grid[-1] >= num_train_timesteps:
        # The official grid has T//c + 1 entries when ``steps`` does not divide T, and then indexes ᾱ[T] (the
        # official code fails with an IndexError there); say so instead.
        good = [n for n in range(2, 101) if range(0, num_train_timesteps, num_train_timesteps // n)[-1] + 1
                < num_train_timesteps]
        raise ValueError(f"{steps} steps: the official uniform grid would reach t={grid[-1]} ≥ {num_train_timesteps};"
                         f" choose e.g. one of {good[:12]}…")
    return grid


@dataclass(frozen=True)
class StepSchedule:
    """Per-step ᾱ values of a sub-sampled schedule, indexed like ``timesteps`` (increasing)."""

    timesteps: np.ndarray          # [S] int, increasing
    alphas: torch.Tensor           # ᾱ_t                 [S] float64
    alphas_prev: torch.Tensor      # ᾱ of the next (smaller) visited t; ᾱ[0] for the last step
    sigmas: torch.Tensor           # DDIM σ_t(η)         [S] float64

    @property
    def steps(self) -> int:
        return len(self.timesteps)


def step_schedule(alphas_cumprod: torch.Tensor, steps: int, eta: float = 0.0, discretize: str = "uniform"
                  ) -> StepSchedule:
    """ᾱ, ᾱ_prev and σ(η) on the grid (``make_ddim_sampling_parameters``), in float64 for exactness."""
    ac = alphas_cumprod.detach().double().cpu()
    ts = make_timesteps(steps, len(ac), discretize)
    alphas = ac[torch.as_tensor(ts)]
    alphas_prev = torch.cat([ac[:1], ac[torch.as_tensor(ts[:-1])]])
    sigmas = eta * torch.sqrt((1 - alphas_prev) / (1 - alphas) * (1 - alphas / alphas_prev))
    return StepSchedule(ts, alphas, alphas_prev, sigmas)
