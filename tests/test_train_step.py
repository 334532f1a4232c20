"""Issue 20 items 1, 6, 7: the tuned training step computes what the step computed before (tests/helpers/
legacy_step.py: four VAE encodes, CFG branch chosen by ``if``), with both CFG branches in the graph."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers.legacy_step import legacy_training_loss

from vitontrain.models import build_model
from vitontrain.train.weights import stand_in_pretrained

TINY = Path(__file__).resolve().parents[1] / "pipelines/train/tiny.yaml"


def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(TINY).train()


def make_batch(b: int = 2, size: int = 128, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    batch = {k: torch.rand(b, 3, size, size, generator=g) * 2 - 1 for k in ("image", "agn", "image_densepose", "cloth")}
    batch["agn_mask"] = (torch.rand(b, 1, size, size, generator=g) > 0.5).float()
    return batch


def test_one_batched_vae_encode_equals_four_separate_encodes():
    model, batch = tiny_model(), make_batch()
    images = [batch[k] for k in ("image", "agn", "image_densepose", "cloth")]
    batched = model.encode_first_stage_batched(images)
    for x, posterior in zip(images, batched, strict=True):
        single = model.encode_first_stage(x)
        torch.testing.assert_close(posterior.mean, single.mean, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(posterior.std, single.std, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("seed", range(6))  # seeds 1, 3, 4 draw the CFG dropout (uncond), the others do not
def test_tuned_step_loss_equals_the_legacy_step_at_fixed_seed(seed):
    model, batch = tiny_model(), make_batch()
    model.batch_first_stage = True  # the GPU path (one VAE pass), here on CPU
    tuned = model.training_loss(batch, generator=torch.Generator().manual_seed(seed))
    legacy, uncond = legacy_training_loss(model, batch, torch.Generator().manual_seed(seed))
    assert tuned.uncond == uncond
    torch.testing.assert_close(tuned.loss, legacy, rtol=1e-6, atol=0)


def test_channels_last_step_loss_equals_the_legacy_step():
    model, batch = tiny_model(), make_batch()
    legacy, _ = legacy_training_loss(model, batch, torch.Generator().manual_seed(0))
    model.batch_first_stage = True
    model.use_channels_last()
    assert model.unet.input_blocks[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    tuned = model.training_loss(batch, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(tuned.loss, legacy, rtol=1e-5, atol=0)


@pytest.mark.parametrize("uncond", [False, True])
def test_both_cfg_branches_get_a_gradient_on_every_step(uncond):
    model = tiny_model()
    stand_in_pretrained(model, 0)  # non-zero frozen output layers, so gradients reach the trained parts
    model.configure_trainable("effective")
    model.training_loss(make_batch(b=1), generator=torch.Generator().manual_seed(0), uncond=uncond).loss.backward()
    without = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not without, without[:5]  # what DDP's static graph needs: no trained parameter left out
    taken, other = (model.learnable_vector, model.proj_out.weight) if uncond else (model.proj_out.weight,
                                                                                   model.learnable_vector)
    assert taken.grad.abs().sum() > 0 and not other.grad.any()


@pytest.mark.parametrize("batched", [True, False])
def test_noise_and_posterior_are_fp32_under_bf16_autocast(batched):
    model, batch = tiny_model(), make_batch(b=1)
    model.batch_first_stage = batched
    with torch.autocast("cpu", dtype=torch.bfloat16):
        posterior = model.encode_first_stage_batched([batch["image"]])[0]
        z = model.latent_from_posterior(posterior, torch.Generator().manual_seed(0))
        inp = model.get_input(batch, torch.Generator().manual_seed(0), encode_cloth=True)
    assert posterior.mean.dtype == posterior.std.dtype == z.dtype == inp.z0.dtype == torch.float32
