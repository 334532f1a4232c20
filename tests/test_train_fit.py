"""The training system end to end on the tiny configuration: overfitting, exact kill-and-resume, checkpoints in the
official layout, the official configuration's trainer, and `vitontrain fit` exit codes."""

from __future__ import annotations

from pathlib import Path

import torch
from typer.testing import CliRunner

from vitonprep import train_config_path
from vitontrain.checkpoints import load_stableviton, read_checkpoint
from vitontrain.cli import app
from vitontrain.data.transforms import collate
from vitontrain.train.callbacks import TrainedParamsEMA
from vitontrain.train.config import load_fit_config
from vitontrain.train.fit import build_fit, run_fit
from vitontrain.train.system import StableVITONSystem
from vitontrain.train.weights import build_net, read_model_state

SMALL = ["data.height=64", "data.width=64", "data.batch_size=1", "data.num_workers=0", "data.shuffle_buffer=0",
         "data.epoch_samples=4", "train.sample_every_n_steps=0", "train.log_every_n_steps=1", "train.seed=5",
         "train.ema.decay=0.9"]


def tiny_config(shards: Path, out: Path, *extra: str):
    return load_fit_config("tiny", [f"data.shards=[{shards}]", f"train.out_dir={out}", *SMALL, *extra])


def trained_state(system: StableVITONSystem) -> dict[str, torch.Tensor]:
    wanted = {id(p) for p in system.net.optimizer_parameters()}
    return {n: p.detach().clone() for n, p in system.net.named_parameters() if id(p) in wanted}


def test_every_train_yaml_resolves_to_a_fit_config():
    for path in sorted(train_config_path("tiny").parent.glob("*.yaml")):  # every shipped training config
        cfg = load_fit_config(path, ["data.shards=[x]"])
        assert cfg.data.shards == ("x",) and cfg.train.max_steps >= 1


def test_overfitting_one_sample_drives_its_loss_down(train_shards):
    from vitontrain.data.shards import decoded_samples, shard_urls
    from vitontrain.data.transforms import to_model_sample

    cfg = tiny_config(train_shards, Path("unused"), "train.lr=1e-3")
    torch.manual_seed(0)
    system = StableVITONSystem(build_net(cfg), cfg.train)
    batch = collate([to_model_sample(next(iter(decoded_samples(shard_urls(train_shards)))), 64, 64)])
    t = torch.tensor([500])
    noise = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))

    def fixed_loss() -> float:
        with torch.no_grad():
            gen = torch.Generator().manual_seed(2)
            return float(system.net.training_loss(batch, t=t, noise=noise, uncond=False, generator=gen).loss)

    optimizer = system.configure_optimizers()
    before = fixed_loss()
    for _ in range(15):
        optimizer.zero_grad()
        loss = system.net.training_loss(batch, t=t, noise=noise, uncond=False,
                                        generator=torch.Generator().manual_seed(2)).loss
        loss.backward()
        optimizer.step()
    after = fixed_loss()
    assert after < 0.5 * before, (before, after)


def test_kill_and_resume_gives_the_uninterrupted_weights(train_shards, tmp_path):
    """Run A: 6 steps straight. Run B: stops after its step-3 checkpoint (mid-epoch: 4 batches per epoch), then a
    new process-equivalent resumes from that file to step 6. Weights, EMA and step must be identical."""
    common = ["data.pairs=[paired,unpaired]", "train.checkpoint_every_n_steps=3", "train.ema.enabled=true"]
    run_a = build_fit(tiny_config(train_shards, tmp_path / "a", "train.max_steps=6", *common), resume="none",
                      progress=False, logger_backends=False)
    run_fit(run_a)
    run_b = build_fit(tiny_config(train_shards, tmp_path / "b", "train.max_steps=3", *common), resume="none",
                      progress=False, logger_backends=False)
    run_fit(run_b)
    ckpt = tmp_path / "b/checkpoints/step0000003.ckpt"
    assert ckpt.is_file()
    run_b2 = build_fit(tiny_config(train_shards, tmp_path / "b", "train.max_steps=6", *common), resume=str(ckpt),
                       progress=False, logger_backends=False)
    run_fit(run_b2)
    assert run_a.trainer.global_step == run_b2.trainer.global_step == 6
    a, b = trained_state(run_a.system), trained_state(run_b2.system)
    start = trained_state(run_b.system)
    assert any(not torch.equal(a[n], start[n]) for n in a)  # training moved the weights after step 3
    assert all(torch.equal(a[n], b[n]) for n in a), [n for n in a if not torch.equal(a[n], b[n])][:5]
    ema_a = next(c for c in run_a.trainer.callbacks if isinstance(c, TrainedParamsEMA))
    ema_b = next(c for c in run_b2.trainer.callbacks if isinstance(c, TrainedParamsEMA))
    assert ema_a.updates == ema_b.updates == 6
    assert all(torch.equal(ema_a.shadow[n], ema_b.shadow[n]) for n in ema_a.shadow)


def test_checkpoint_has_the_official_layout_and_loads_strictly(train_shards, tmp_path):
    cfg = tiny_config(train_shards, tmp_path / "run", "data.pairs=[paired,unpaired]", "train.max_steps=1",
                      "train.checkpoint_every_n_steps=1")
    run = build_fit(cfg, resume="none", progress=False, logger_backends=False)
    run_fit(run)
    last = tmp_path / "run/checkpoints/last.ckpt"
    assert last.is_symlink() and last.resolve() == tmp_path / "run/checkpoints/step0000001.ckpt"  # no second copy
    ckpt = read_checkpoint(last)
    assert ckpt["vitontrain"]["layout"] == "official" and "optimizer_states" in ckpt
    assert not any(k.startswith("net.") for k in ckpt["state_dict"])
    assert set(ckpt["state_dict"]).isdisjoint(ckpt["vitontrain"]["frozen"]["dropped"])  # frozen weights left out
    fresh = build_net(cfg)
    report = load_stableviton(fresh, read_model_state(last))  # the slim file completed from its run's init
    assert report.ok
    for name, p in fresh.named_parameters():
        assert torch.equal(p, dict(run.system.net.named_parameters())[name]), name


def test_official_configuration_trainer_builds_on_meta(tmp_path, train_shards):
    cfg = load_fit_config("stableviton", [f"data.shards=[{train_shards}]", f"train.out_dir={tmp_path}"])
    with torch.device("meta"):
        net = build_net(cfg)
    run = build_fit(cfg, resume="none", progress=False, logger_backends=False, net=net)
    optimizer = run.system.configure_optimizers()
    n_opt = sum(p.numel() for group in optimizer.param_groups for p in group["params"])
    assert n_opt == 355_255_168  # the official set (529.4 M) minus the 174 M that never get a gradient
    assert run.trainer.max_steps == cfg.train.max_steps and run.trainer.precision == "bf16-mixed"
    # gradient_checkpointing: auto leaves the model's setting on the CPU: the official use_checkpoint (on)
    params = cfg.model_config()["params"]
    assert "gradient_checkpointing" not in params
    assert params["control_stage_config"]["params"]["use_checkpoint"] is True
    assert params["unet_config"]["params"]["use_checkpoint"] is True


runner = CliRunner()


def flat(text: str) -> str:
    return " ".join(text.split())  # rich wraps long lines


def test_fit_cli_errors_exit_2(tmp_path):
    missing = runner.invoke(app, ["fit", "--config", "tiny", "--set", f"data.shards=[{tmp_path / 'none'}]",
                                  "--set", f"train.out_dir={tmp_path}", "--no-progress"])
    assert missing.exit_code == 2 and "no such file or folder" in flat(missing.output)
    unknown = runner.invoke(app, ["fit", "--config", "tiny", "--set", "train.bogus=1"])
    assert unknown.exit_code == 2 and "bogus" in flat(unknown.output)
    bad = runner.invoke(app, ["fit", "--config", "no-such-config"])
    assert bad.exit_code == 2 and "not found" in flat(bad.output)


def test_fit_cli_trains_and_writes_checkpoint_and_grids(train_shards, tmp_path):
    out = tmp_path / "cli"
    args = ["fit", "--config", "tiny", "--no-progress", "--set", f"data.shards=[{train_shards}]",
            "--set", f"train.out_dir={out}"]
    for o in SMALL + ["train.max_steps=2", "train.checkpoint_every_n_steps=2", "train.sample_every_n_steps=2",
                      "train.sample_steps=2", "train.sample_count=2", "data.pairs=[paired,unpaired]"]:
        args += ["--set", o]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (out / "checkpoints/last.ckpt").is_file()
    grids = sorted(p.name for p in (out / "samples").glob("*.jpg"))
    assert grids == ["step0000002_paired.jpg", "step0000002_unpaired.jpg"]
    assert (out / "logs").is_dir()
