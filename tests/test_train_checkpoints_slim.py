"""Training checkpoints without frozen weights (issue 20 item 5) and runs that can be rebuilt (issue 16): the
resolved config in the run folder and in every checkpoint, a checkpoint alone rebuilding its model for `sample`,
the refill from the run's init files with clear refusals, `export-checkpoint` to the official layout, frozen
VAE/CLIP weights in bf16 under bf16-mixed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_model_keys import fixture_keys
from typer.testing import CliRunner

from vitonprep import ConfigError
from vitontrain.checkpoints import CheckpointError, load_stableviton, read_checkpoint, read_state_dict, save_official
from vitontrain.cli import app
from vitontrain.models import build_model
from vitontrain.sampling.inference import load_inference_model
from vitontrain.sampling.run import load_sampling_model
from vitontrain.train.callbacks import TrainedParamsEMA
from vitontrain.train.config import config_from_yaml, load_fit_config
from vitontrain.train.fit import build_fit, run_fit
from vitontrain.train.system import StableVITONSystem
from vitontrain.train.weights import (
    RunInfo,
    build_net,
    export_checkpoint,
    frozen_keys,
    read_model_state,
    restore_net,
    store_frozen_bf16,
)

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "pipelines/train/tiny.yaml"
FULL = ROOT / "pipelines/train/stableviton.yaml"
SMALL = ["data.height=64", "data.width=64", "data.batch_size=1", "data.num_workers=0", "data.shuffle_buffer=0",
         "data.epoch_samples=4", "train.sample_every_n_steps=0", "train.log_every_n_steps=1", "train.seed=3",
         "data.pairs=[paired,unpaired]"]
runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_torch_thread")  # shared cores: one thread is faster than two


def flat(text: str) -> str:
    return " ".join(text.split())


def tiny_config(shards: Path, out: Path, *extra: str):
    return load_fit_config("tiny", [f"data.shards=[{shards}]", f"train.out_dir={out}", *SMALL, *extra])


def full_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def seeded_net(cfg):
    """The net as fit builds it (seed_everything(train.seed), then build_net)."""
    torch.manual_seed(cfg.train.seed)
    return build_net(cfg)


def save_like_fit(cfg, net, path: Path) -> Path:
    """What ModelCheckpoint writes, through the system's own hook (no trainer needed)."""
    system = StableVITONSystem(net, cfg.train, RunInfo.of(cfg, net))
    checkpoint = {"state_dict": system.state_dict(), "global_step": 0}
    system.on_save_checkpoint(checkpoint)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path)
    return path


@pytest.fixture(scope="module")
def run(train_shards, tmp_path_factory):
    """Two steps of the tiny config with EMA, a checkpoint at step 2 and an override from the command line."""
    out = tmp_path_factory.mktemp("slim") / "run"
    cfg = tiny_config(train_shards, out, "train.max_steps=2", "train.checkpoint_every_n_steps=2",
                      "train.ema.enabled=true", "train.ema.decay=0.5", "train.lr=1e-3")
    fit = build_fit(cfg, resume="none", progress=False, logger_backends=False)
    run_fit(fit)
    return cfg, fit, out


def test_run_folder_and_checkpoint_hold_the_resolved_config(run):
    cfg, fit, out = run
    text = (out / "config.yaml").read_text()
    ckpt = read_checkpoint(out / "checkpoints/last.ckpt")
    assert ckpt["vitontrain"]["config"] == text
    again = config_from_yaml(text, "config.yaml")
    assert again.model == cfg.model and again.data == cfg.data and again.train == cfg.train
    assert again.train.lr == 1e-3 and again.train.max_steps == 2  # the --set overrides, not the YAML's values


def test_checkpoint_leaves_the_frozen_tensors_out_and_rebuilds_them(run):
    cfg, fit, out = run
    ckpt = read_checkpoint(out / "checkpoints/last.ckpt")
    net = fit.system.net
    frozen = frozen_keys(net)
    kept = set(ckpt["state_dict"])
    assert frozen and not kept & set(frozen)
    assert kept | set(frozen) == set(net.state_dict())
    assert ckpt["vitontrain"]["frozen"]["dropped"] == frozen
    rebuilt, rebuilt_cfg = restore_net(out / "checkpoints/last.ckpt")
    assert rebuilt_cfg.train == cfg.train
    expected = net.state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in rebuilt.state_dict().items())
    # init.stableviton accepts a slim checkpoint: completed the same way
    assert all(torch.equal(v, expected[k]) for k, v in read_model_state(out / "checkpoints/last.ckpt").items())


def sample_args(shards: Path, out: Path, checkpoint: Path) -> list[str]:
    return ["sample", str(shards), str(out), "--checkpoint", str(checkpoint), "--steps", "1", "--height", "64",
            "--width", "64", "--limit", "1", "--sampler", "ddim", "--no-progress"]


def test_sample_rebuilds_the_model_from_the_checkpoint_alone(run, train_shards, tmp_path):
    cfg, fit, out = run
    last = out / "checkpoints/last.ckpt"
    model = load_sampling_model(last)  # no config
    assert all(torch.equal(v, fit.system.net.state_dict()[k]) for k, v in model.state_dict().items())
    assert load_sampling_model(last, "tiny") is not None  # --config agreeing with the stored config: accepted
    other = tmp_path / "other.yaml"
    other.write_text(TINY.read_text().replace("u_cond_percent: 0.2", "u_cond_percent: 0.3"))
    refused = runner.invoke(app, [*sample_args(train_shards, tmp_path / "o", last), "--config", str(other)])
    assert refused.exit_code == 2 and "model.params.u_cond_percent" in flat(refused.output), refused.output



def test_every_checkpoint_reader_completes_a_slim_checkpoint(run):
    """load_inference_model (what tryon and evaluate's callers used) reads a slim checkpoint as sample does."""
    cfg, fit, out = run
    model = load_inference_model("tiny", out / "checkpoints/last.ckpt")
    assert all(torch.equal(v, fit.system.net.state_dict()[k]) for k, v in model.state_dict().items())


@pytest.mark.slow
def test_sample_cli_with_a_slim_checkpoint_and_no_config(run, train_shards, tmp_path):
    cfg, fit, out = run
    result = runner.invoke(app, sample_args(train_shards, tmp_path / "o", out / "checkpoints/last.ckpt"))
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "o/unpair").glob("*.jpg"))) == 1


@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt"])
def test_export_writes_the_full_official_layout(run, tmp_path, suffix):
    cfg, fit, out = run
    target = tmp_path / f"model{suffix}"
    result = runner.invoke(app, ["export-checkpoint", str(out / "checkpoints/last.ckpt"), str(target)])
    assert result.exit_code == 0, result.output
    if suffix == ".ckpt":  # weights only: the official code's torch.load reads it as it is
        assert set(torch.load(target, map_location="cpu", weights_only=True)) == {"state_dict"}
    exported = read_state_dict(target)
    fresh = build_model(TINY)
    if suffix == ".ckpt":
        assert list(exported) == list(fresh.state_dict())  # every key, in the official order
    assert set(exported) == set(fresh.state_dict())  # (safetensors stores its keys sorted)
    assert load_stableviton(fresh, exported).ok  # strict
    net_state = fit.system.net.state_dict()
    assert all(torch.equal(v, net_state[k]) for k, v in exported.items())


def test_export_with_ema_takes_the_averaged_weights(run, tmp_path):
    cfg, fit, out = run
    ema = next(c for c in fit.trainer.callbacks if isinstance(c, TrainedParamsEMA))
    target = export_checkpoint(out / "checkpoints/last.ckpt", tmp_path / "ema.safetensors", ema=True)
    exported = read_state_dict(target)
    assert ema.shadow and all(torch.equal(exported[k], v.cpu()) for k, v in ema.shadow.items())
    trained = dict(fit.system.net.named_parameters())
    assert any(not torch.equal(exported[k], trained[k]) for k in ema.shadow)  # decay 0.5: not the last weights
    with pytest.raises(ValueError, match="overwrite"):
        export_checkpoint(out / "checkpoints/last.ckpt", out / "checkpoints/last.ckpt")


def test_full_config_slim_plus_frozen_is_the_official_key_set():
    cfg = load_fit_config(FULL, ["data.shards=[x]"])
    with torch.device("meta"):
        net = build_net(cfg)
    frozen = set(frozen_keys(net))
    kept = [k for k in net.state_dict() if k not in frozen]
    assert list(fixture_keys()) == [k for k in net.state_dict() if k in frozen or k in kept]
    params = dict(net.named_parameters())
    # what a slim checkpoint leaves out at full size (1.48 B of 1.84 B parameters)
    assert sum(params[k].numel() for k in frozen) == 1_838_680_959 - 355_255_168


# ------------------------------------------------------------------------------------------------ refill sources
@pytest.fixture
def vae_run(tmp_path):
    """A slim checkpoint of a run that took its VAE from init.vae (a file made here)."""
    cfg0 = load_fit_config("tiny", ["data.shards=[x]", "train.seed=11"])
    vae_file = save_official(seeded_net(cfg0).first_stage_model, tmp_path / "vae.ckpt")
    cfg = load_fit_config("tiny", ["data.shards=[x]", f"init.vae={vae_file}"])
    net = seeded_net(cfg)
    return cfg, net, vae_file, save_like_fit(cfg, net, tmp_path / "run/last.ckpt")


def test_refill_reads_the_recorded_init_files(vae_run):
    cfg, net, vae_file, ckpt = vae_run
    assert config_from_yaml(read_checkpoint(ckpt)["vitontrain"]["config"], "x").init.vae == str(vae_file)
    rebuilt, _ = restore_net(ckpt)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in rebuilt.state_dict().items())


def test_missing_frozen_source_is_named(vae_run, tmp_path):
    cfg, net, vae_file, ckpt = vae_run
    vae_file.rename(tmp_path / "moved.ckpt")
    with pytest.raises(CheckpointError, match=r"init\.vae = .*vae\.ckpt.*missing"):
        restore_net(ckpt)
    result = runner.invoke(app, ["export-checkpoint", str(ckpt), str(tmp_path / "x.safetensors")])
    assert result.exit_code == 2 and "init.vae" in flat(result.output) and "missing" in flat(result.output)


def test_replaced_or_unreadable_frozen_source_is_refused(vae_run):
    cfg, net, vae_file, ckpt = vae_run
    other = load_fit_config("tiny", ["data.shards=[x]", "train.seed=12"])
    save_official(seeded_net(other).first_stage_model, vae_file)  # same keys, other weights
    with pytest.raises(CheckpointError, match="differ from those the run trained with"):
        restore_net(ckpt)
    vae_file.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"vae\.ckpt"):
        restore_net(ckpt)


def test_a_slim_checkpoint_without_a_fingerprint_is_refused(vae_run, tmp_path):
    """Nothing to check a refill against (a hand-edited or foreign file): refused, not silently refilled."""
    cfg, net, vae_file, ckpt = vae_run
    state = read_checkpoint(ckpt)
    frozen = dict(state["vitontrain"]["frozen"], fingerprint=None)
    path = tmp_path / "no_fingerprint.ckpt"
    torch.save(dict(state, vitontrain=dict(state["vitontrain"], frozen=frozen)), path)
    with pytest.raises(CheckpointError, match="records no fingerprint"):
        restore_net(path)


def test_checkpoint_config_is_parsed_strictly(vae_run, tmp_path):
    """The stored config is untrusted: YAML tags are not constructed, targets outside vitontrain are refused."""
    cfg, net, vae_file, ckpt = vae_run
    state = read_checkpoint(ckpt)
    marker = tmp_path / "marker"
    cases = {
        "tag": f"model: !!python/object/apply:os.system ['touch {marker}']\n",
        "target": state["vitontrain"]["config"].replace("vitontrain.models.stableviton.StableVITONModel",
                                                        "os.system"),
        "unknown": state["vitontrain"]["config"] + "bogus: 1\n",
    }
    for name, text in cases.items():
        crafted = dict(state, vitontrain=dict(state["vitontrain"], config=text))
        path = tmp_path / f"{name}.ckpt"
        torch.save(crafted, path)
        with pytest.raises(ConfigError):
            restore_net(path)
        assert not marker.exists()


# ------------------------------------------------------------------------------------------------ bf16 storage
def test_frozen_bf16_storage_changes_no_loss_under_autocast(train_shards):
    from vitontrain.data.shards import decoded_samples, shard_urls
    from vitontrain.data.transforms import collate, to_model_sample

    cfg = load_fit_config("tiny", [f"data.shards=[{train_shards}]", "train.precision=bf16-mixed"])
    batch = collate([to_model_sample(next(iter(decoded_samples(shard_urls(train_shards)))), 64, 64)])

    def loss(net) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return net.training_loss(batch, generator=torch.Generator().manual_seed(4)).loss

    net = seeded_net(cfg)
    before = loss(net)
    cast = store_frozen_bf16(net)
    assert cast > 0 and net.first_stage_model.encoder.conv_in.weight.dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in net.optimizer_parameters())
    assert torch.equal(loss(net), before)


def test_resume_refills_from_the_model_in_memory_and_refuses_other_frozen_weights(tmp_path):
    cfg = load_fit_config("tiny", ["data.shards=[x]", "train.seed=21"])
    net = seeded_net(cfg)
    checkpoint = read_checkpoint(save_like_fit(cfg, net, tmp_path / "a.ckpt"), mmap=False)
    again = seeded_net(cfg)
    same = StableVITONSystem(again, cfg.train, RunInfo.of(cfg, again))
    restored = dict(checkpoint, state_dict=dict(checkpoint["state_dict"]))
    same.on_load_checkpoint(restored)
    same.load_state_dict(restored["state_dict"])  # strict: every key is there again
    other_cfg = load_fit_config("tiny", ["data.shards=[x]", "train.seed=22"])
    other_net = seeded_net(other_cfg)
    other = StableVITONSystem(other_net, other_cfg.train, RunInfo.of(other_cfg, other_net))
    with pytest.raises(CheckpointError, match="other frozen weights"):
        other.on_load_checkpoint(dict(checkpoint, state_dict=dict(checkpoint["state_dict"])))
