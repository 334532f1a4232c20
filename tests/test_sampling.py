"""Samplers (grids, update rules, x0 recovery), try-on generation with the tiny model, `vitontrain sample`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vitontrain.models.schedule import schedule_arrays
from vitontrain.sampling import SamplingConfig, ddim_sample, generate, make_timesteps, plms_sample, step_schedule
from vitontrain.sampling.inference import MissingFileError, load_inference_model
from vitontrain.sampling.run import sample_dataset
from vitontrain.sampling.samplers import SamplerOutput

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "pipelines/train/tiny.yaml"
AC = torch.tensor(schedule_arrays()["alphas_cumprod"])


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ------------------------------------------------------------------------------------------------------ grids
def test_uniform_grid_is_the_official_one():
    # ldm make_ddim_timesteps("uniform", 50, 1000): range(0, 1000, 20) + 1 = [1, 21, ..., 981]
    assert make_timesteps(50).tolist() == list(range(1, 1000, 20))
    assert make_timesteps(25).tolist() == [t + 1 for t in range(0, 1000, 40)]
    # 30 does not divide 1000: the official grid then has 31 points (stride 33)
    assert make_timesteps(30).tolist() == [t + 1 for t in range(0, 1000, 33)]
    with pytest.raises(ValueError, match="official uniform grid"):
        make_timesteps(3)  # the official code would index alphas_cumprod[1000]


def test_step_schedule_alphas():
    s = step_schedule(AC, 50)
    ts = list(range(1, 1000, 20))
    assert s.timesteps.tolist() == ts
    assert torch.equal(s.alphas, AC[ts])
    assert s.alphas_prev[0] == AC[0]                       # last reverse step ends at ᾱ[0], not 1
    assert abs(float(s.alphas_prev[0]) - 0.99915) < 1e-5    # ᾱ[0] = 1 − β₀ = 1 − 0.00085
    assert torch.equal(s.alphas_prev[1:], AC[ts[:-1]])
    assert torch.all(s.sigmas == 0)
    s1 = step_schedule(AC, 50, eta=1.0)
    a, ap = s1.alphas, s1.alphas_prev
    assert torch.allclose(s1.sigmas, torch.sqrt((1 - ap) / (1 - a) * (1 - a / ap)))


def _recording(eps_fn, seen):
    def f(x, t):
        seen.append(int(t[0]))
        return eps_fn(x, t)
    return f


def test_samplers_visit_the_grid_in_reverse():
    x = torch.zeros(1, 1, 2, 2)
    zero = lambda x, t: torch.zeros_like(x)  # noqa: E731
    seen: list[int] = []
    out = ddim_sample(_recording(zero, seen), x, step_schedule(AC, 50))
    assert seen == list(range(981, 0, -20)) and out.nfe == 50
    seen = []
    out = plms_sample(_recording(zero, seen), x, step_schedule(AC, 50))
    # PLMS: the first step evaluates ε at 981 and at the next grid time 961 (pseudo improved Euler), 51 in all
    assert seen == [981, 961] + list(range(961, 0, -20)) and out.nfe == 51


def _point_mass_denoiser(x0: torch.Tensor):
    """The exact ε-predictor when the data is the single point x0: ε = (x − √ᾱ_t x0) / √(1−ᾱ_t)."""
    def eps(x, t):
        a = AC[t].float().reshape(-1, 1, 1, 1)
        return (x - a.sqrt() * x0) / (1 - a).sqrt()
    return eps


@pytest.mark.parametrize("sampler", ["ddim", "plms"])
def test_true_noise_recovers_x0(sampler):
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(2, 4, 8, 6, generator=g)
    noise = torch.randn(x0.shape, generator=g)
    s = step_schedule(AC, 50)
    t_start = int(s.timesteps[-1])
    x_T = AC[t_start].sqrt().float() * x0 + (1 - AC[t_start]).sqrt().float() * noise
    run = ddim_sample if sampler == "ddim" else plms_sample
    out = run(lambda x, t: noise, x_T, s)  # a model that returns the true noise
    assert torch.allclose(out.pred_x0, x0, atol=1e-4)
    # η = 0 keeps the same noise all the way down: the result is x0 at ᾱ[0] (0.99915), as officially returned
    expected = AC[0].sqrt().float() * x0 + (1 - AC[0]).sqrt().float() * noise
    assert torch.allclose(out.x, expected, atol=1e-4)
    assert (out.x - x0).abs().max() < 0.15


@pytest.mark.parametrize("eta", [0.0, 0.7])
def test_ddim_from_pure_noise_with_the_exact_denoiser(eta):
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(1, 4, 8, 6, generator=g)
    x_T = torch.randn(x0.shape, generator=g)
    out = ddim_sample(_point_mass_denoiser(x0), x_T, step_schedule(AC, 20, eta=eta),
                      generator=torch.Generator().manual_seed(2))
    assert torch.allclose(out.pred_x0, x0, atol=1e-4)
    assert (out.x - x0).abs().max() < 0.15
    # and a wrong denoiser does not land there (the check above can fail)
    wrong = ddim_sample(_point_mass_denoiser(x0 + 1.0), x_T, step_schedule(AC, 20))
    assert (wrong.pred_x0 - x0).abs().min() > 0.5


def test_ddim_eta_noise_comes_from_the_generator():
    eps = lambda x, t: 0.1 * x  # noqa: E731
    x = torch.randn(1, 4, 8, 6, generator=torch.Generator().manual_seed(0))
    s = step_schedule(AC, 10, eta=1.0)
    a = ddim_sample(eps, x, s, generator=torch.Generator().manual_seed(5)).x
    b = ddim_sample(eps, x, s, generator=torch.Generator().manual_seed(5)).x
    c = ddim_sample(eps, x, s, generator=torch.Generator().manual_seed(6)).x
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_plms_refuses_eta():
    with pytest.raises(ValueError, match="eta"):
        SamplingConfig(sampler="plms", eta=0.5)
    with pytest.raises(ValueError, match="eta"):
        plms_sample(lambda x, t: x, torch.zeros(1, 1, 1, 1), step_schedule(AC, 10, eta=0.5))


# --------------------------------------------------------------------------------------------- tiny model
@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return load_inference_model(TINY, None, random_init=True)


def _batch(b=2, h=128, w=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    batch = {k: torch.rand(b, 3, h, w, generator=g) * 2 - 1 for k in ("image", "agn", "image_densepose", "cloth")}
    keep = torch.ones(b, 1, h, w)
    keep[:, :, h // 4:3 * h // 4, w // 4:3 * w // 4] = 0.0
    batch["agn_mask"] = keep
    return batch


def test_guidance_combines_both_branches(tiny, monkeypatch):
    """ε = ε_u + s(ε_c − ε_u), with the unconditional context = learnable_vector (not through proj_out)."""
    import vitontrain.sampling.inference as inf

    seen_ctx = []

    def fake_apply(x, t, fsc, hint, context, **kw):
        uncond = torch.allclose(context, tiny.learnable_vector.expand_as(context))
        seen_ctx.append(uncond)
        return torch.full_like(x, 0.0 if uncond else 1.0), None

    got = {}

    def fake_sampler(name, eps_fn, x_T, schedule, generator=None, callback=None):
        got["eps"] = eps_fn(x_T, torch.full((x_T.shape[0],), 981))
        return SamplerOutput(x_T, x_T, 1)

    monkeypatch.setattr(tiny, "apply_model", fake_apply)
    monkeypatch.setattr(inf, "run_sampler", fake_sampler)
    out = generate(tiny, _batch(1), SamplingConfig(steps=2, guidance_scale=5.0))
    assert seen_ctx == [False, True] and torch.all(got["eps"] == 5.0) and out.nfe == 2
    seen_ctx.clear()
    generate(tiny, _batch(1), SamplingConfig(steps=2, guidance_scale=1.0))
    assert seen_ctx == [False] and torch.all(got["eps"] == 1.0)  # scale 1: only the conditional branch runs


def test_generate_is_reproducible_and_repaints(tiny):
    batch = _batch()
    cfg = SamplingConfig(sampler="ddim", steps=2, eta=0.5, guidance_scale=2.0)
    a = generate(tiny, batch, cfg, torch.Generator().manual_seed(3)).images
    b = generate(tiny, batch, cfg, torch.Generator().manual_seed(3)).images
    c = generate(tiny, batch, cfg, torch.Generator().manual_seed(4)).images
    assert a.shape == (2, 3, 128, 128) and torch.equal(a, b) and not torch.allclose(a, c)
    assert a.min() >= -1 and a.max() <= 1
    r = generate(tiny, batch, SamplingConfig(steps=2, repaint=True, start="noise"),
                 torch.Generator().manual_seed(3)).images
    keep = batch["agn_mask"].bool().expand_as(r)
    assert torch.allclose(r[keep], batch["image"][keep])           # visible region = the person photo
    assert not torch.allclose(r[~keep], batch["image"][~keep])     # the hole is generated


def test_start_latent_is_the_noised_person(tiny, monkeypatch):
    import vitontrain.sampling.inference as inf

    starts = {}

    def capture(name, eps_fn, x_T, schedule, generator=None, callback=None):
        starts[name] = x_T
        return SamplerOutput(x_T, x_T, 0)

    monkeypatch.setattr(inf, "run_sampler", capture)
    tiny.sample_posterior = False
    try:
        batch = _batch(1)
        generate(tiny, batch, SamplingConfig(steps=2), torch.Generator().manual_seed(0))
        z = tiny.get_input(batch).z0
        noise = torch.randn(z.shape, generator=torch.Generator().manual_seed(0))
        assert torch.allclose(starts["plms"], AC[999].sqrt() * z + (1 - AC[999]).sqrt() * noise, atol=1e-5)
        generate(tiny, batch, SamplingConfig(steps=2, start="noise"), torch.Generator().manual_seed(0))
        assert torch.allclose(starts["plms"], noise)
    finally:
        tiny.sample_posterior = True


def test_sample_from_shards_end_to_end(tiny, vitonhd_shards, tmp_path):
    out = tmp_path / "out"
    report = sample_dataset(tiny, vitonhd_shards, out, SamplingConfig(steps=2), 192, 128, batch_size=2)
    assert report.count == 3
    manifest = json.loads((out / "samples.json").read_text())
    files = sorted(i["file"] for i in manifest["items"])
    # the bundled official test pairs (data/vitonhd-official/test_pairs.txt), official file names
    assert files == ["unpair/00891_00_01430_00.jpg", "unpair/03615_00_02783_00.jpg", "unpair/07445_00_06429_00.jpg"]
    for f in files:
        assert Image.open(out / f).size == (128, 192)
    grid = Image.open(out / "grid_unpair.jpg")
    assert grid.size == (4 * 128, 3 * 192)   # person, garment, agnostic, result — one row per sample
    assert manifest["sampling"]["sampler"] == "plms" and manifest["size"] == [192, 128]
    # same seed → same images
    sample_dataset(tiny, vitonhd_shards, tmp_path / "again", SamplingConfig(steps=2), 192, 128, batch_size=2)
    a = np.asarray(Image.open(out / files[0]))
    b = np.asarray(Image.open(tmp_path / "again" / files[0]))
    assert np.array_equal(a, b)


def test_sample_from_vitonhd_folder_paired(tiny, v3_root, tmp_path):
    report = sample_dataset(tiny, v3_root, tmp_path / "o", SamplingConfig(sampler="ddim", steps=2), 128, 128,
                            modes=("paired",), batch_size=1)
    assert [i["file"] for i in report.items] == ["pair/00006_00_00006_00.jpg"]
    assert (tmp_path / "o/grid_pair.jpg").is_file()


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(MissingFileError, match="checkpoint not found"):
        load_inference_model(TINY, tmp_path / "nope.ckpt")
    with pytest.raises(MissingFileError, match="no checkpoint"):
        load_inference_model(TINY, None)


# ------------------------------------------------------------------------------------------------------ CLI
def test_cli_sample(vitonhd_shards, tmp_path):
    from typer.testing import CliRunner

    from vitontrain.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["sample", str(vitonhd_shards), str(tmp_path / "o"), "--config", str(TINY),
                              "--checkpoint", str(tmp_path / "missing.ckpt")])
    assert res.exit_code == 2 and "checkpoint not found" in res.output
    res = runner.invoke(app, ["sample", str(tmp_path / "nosuch"), str(tmp_path / "o"), "--config", str(TINY),
                              "--random-init"])
    assert res.exit_code == 2 and "not found" in res.output
    res = runner.invoke(app, ["sample", str(vitonhd_shards), str(tmp_path / "o"), "--config", str(TINY),
                              "--random-init", "--steps", "2", "--height", "128", "--width", "128",
                              "--limit", "1", "--sampler", "ddim", "--threads", "1"])
    assert res.exit_code == 0, res.output
    assert len(list((tmp_path / "o/unpair").glob("*.jpg"))) == 1


def test_bf16_autocast_runs_on_cpu(tiny):
    batch = _batch(1, 64, 64)  # bf16 is emulated (slow) on CPUs without native bf16: keep it small
    cfg = dict(sampler="ddim", steps=2)
    a = generate(tiny, batch, SamplingConfig(**cfg, precision="bf16"), torch.Generator().manual_seed(0)).images
    b = generate(tiny, batch, SamplingConfig(**cfg, precision="fp32"), torch.Generator().manual_seed(0)).images
    assert torch.isfinite(a).all() and a.shape == b.shape
    assert not torch.equal(a, b)  # bf16 really ran (same seed, different arithmetic)
