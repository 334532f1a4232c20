"""The training step's loss as it was computed before issue 20 (four separate VAE encodes, the cloth encoded inside
``apply_model``, the CFG branch chosen by ``if``), kept as the reference the tuned step must equal."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def legacy_training_loss(model, batch, generator: torch.Generator) -> tuple[torch.Tensor, bool]:
    def encode(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model.scale_factor * model.first_stage_model.encode(x.float()).sample(generator)

    h, w = batch["image"].shape[-2:]
    lh, lw = h // model.latent_factor, w // model.latent_factor
    z0 = encode(batch["image"])
    agn = encode(batch["agn"])
    mask = F.interpolate(batch["agn_mask"].float(), size=(lh, lw), mode="bilinear", align_corners=False)
    densepose = encode(batch["image_densepose"])
    b = z0.shape[0]
    t = torch.randint(0, model.num_timesteps, (b,), generator=generator)
    noise = torch.randn(z0.shape, generator=generator)
    uncond = bool(torch.rand((), generator=generator) < model.u_cond_percent)
    context = model.unconditional_context(b) if uncond else model.conditional_context(batch["cloth"].float())
    x_noisy = model.q_sample(z0, t, noise)
    eps, _ = model.apply_model(x_noisy, t, torch.cat([agn, mask, densepose], dim=1), batch["cloth"].float(), context,
                               generator=generator)
    per_sample = F.mse_loss(eps, noise, reduction="none").mean(dim=(1, 2, 3))
    logvar_t = model.logvar[t]
    return model.l_simple_weight * (per_sample / torch.exp(logvar_t) + logvar_t).mean(), uncond
