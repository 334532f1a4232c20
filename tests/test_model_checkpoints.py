"""Checkpoint I/O: official-layout and safetensors round trips, strict loads that name bad keys, the VAE fine-tune
file, Paint-by-Example initialisation and refusal of files that would need arbitrary unpickling."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vitontrain.checkpoints import (
    POSITION_IDS_KEY,
    StateDictMismatchError,
    UnsafeCheckpointError,
    init_from_paint_by_example,
    load_stableviton,
    load_vae_finetune,
    read_state_dict,
    save_official,
    save_safetensors,
)
from vitontrain.models import StableVITONModel, build_model

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "pipelines/train/tiny.yaml"


def tiny(seed: int) -> StableVITONModel:
    torch.manual_seed(seed)
    return build_model(TINY)


def random_like_model(model: StableVITONModel, seed: int = 7) -> dict[str, torch.Tensor]:
    """A synthetic 'official' state dict: random tensors with the model's keys and shapes."""
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=g) for k, v in model.state_dict().items()}


def assert_state_equal(model: torch.nn.Module, sd: dict[str, torch.Tensor]) -> None:
    ours = model.state_dict()
    assert ours.keys() == sd.keys()
    for k, v in sd.items():
        assert torch.equal(ours[k], v), k


@pytest.fixture(scope="module")
def source_model() -> StableVITONModel:
    return tiny(0)


@pytest.mark.parametrize("fmt", ["official", "safetensors"])
def test_save_load_round_trip(tmp_path, source_model, fmt):
    if fmt == "official":
        path = save_official(source_model, tmp_path / "model.ckpt", epoch=3, global_step=120)
        raw = torch.load(path, map_location="cpu", weights_only=True)  # loadable by plain safe torch.load
        assert set(raw) == {"state_dict", "epoch", "global_step"}
        assert list(raw["state_dict"]) == list(source_model.state_dict())
    else:
        path = save_safetensors(source_model, tmp_path / "model.safetensors")
    target = tiny(1)
    report = load_stableviton(target, path)
    assert report.ok and report.loaded == len(source_model.state_dict())
    assert_state_equal(target, source_model.state_dict())


def test_synthetic_lightning_checkpoint_loads_strictly(tmp_path, source_model):
    sd = random_like_model(source_model)
    sd[POSITION_IDS_KEY] = torch.arange(5)[None]  # saved by transformers < 4.31: dropped, not unexpected
    ckpt = {"epoch": 40, "global_step": 14560, "pytorch-lightning_version": "1.5.0", "state_dict": sd,
            "optimizer_states": [{"state": {0: {"step": torch.tensor(3.0)}}, "param_groups": [{"lr": 1e-4}]}],
            "callbacks": {"ModelCheckpoint": {"best_model_score": torch.tensor(0.1), "dirpath": "x"}},
            "lr_schedulers": []}
    torch.save(ckpt, tmp_path / "VITONHD.ckpt")
    model = tiny(1)
    report = load_stableviton(model, tmp_path / "VITONHD.ckpt")
    assert report.ok and report.dropped == [POSITION_IDS_KEY]
    del sd[POSITION_IDS_KEY]
    assert_state_equal(model, sd)


def test_bare_state_dict_file_loads(tmp_path, source_model):
    sd = random_like_model(source_model, seed=3)
    torch.save(sd, tmp_path / "VITONHD_PBE_pose.ckpt")
    model = tiny(2)
    assert load_stableviton(model, tmp_path / "VITONHD_PBE_pose.ckpt").ok
    assert_state_equal(model, sd)


def test_missing_unexpected_and_misshapen_keys_are_named(tmp_path, source_model):
    sd = random_like_model(source_model)
    gone = "model.diffusion_model.warp_zero_convs.4.weight"
    del sd[gone]
    path = tmp_path / "broken.ckpt"
    torch.save({"state_dict": sd}, path)
    model = tiny(1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(StateDictMismatchError, match=r"missing keys \(1\): " + gone.replace(".", r"\.")) as err:
        load_stableviton(model, path)
    assert err.value.report.missing == [gone]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # strict failure loads nothing

    sd[gone] = torch.zeros(3, 3)  # wrong shape
    sd["model.diffusion_model.extra_head.weight"] = torch.zeros(1)
    torch.save({"state_dict": sd}, path)
    with pytest.raises(StateDictMismatchError) as err:
        load_stableviton(model, path)
    msg = str(err.value)
    assert "unexpected keys (1): model.diffusion_model.extra_head.weight" in msg
    assert gone in msg and "shape mismatches (1)" in msg

    report = load_stableviton(model, path, strict=False)  # non-strict: the rest loads, problems reported
    assert not report.ok and report.loaded == len(sd) - 2
    assert torch.equal(model.state_dict()["lastzc.weight"], sd["lastzc.weight"])


def test_vae_finetune_file_with_loss_keys(tmp_path, source_model):
    g = torch.Generator().manual_seed(11)
    vae_sd = {k: torch.randn(v.shape, generator=g) for k, v in source_model.first_stage_model.state_dict().items()}
    from collections import OrderedDict

    raw = OrderedDict(vae_sd)
    raw["loss.logvar"] = torch.zeros(())
    raw["loss.perceptual_loss.net.slice1.0.weight"] = torch.zeros(64, 3, 3, 3)
    torch.save(raw, tmp_path / "VITONHD_VAE_finetuning.ckpt")
    model = tiny(1)
    report = load_vae_finetune(model, tmp_path / "VITONHD_VAE_finetuning.ckpt")
    assert report.ok and sorted(report.dropped) == ["loss.logvar", "loss.perceptual_loss.net.slice1.0.weight"]
    assert_state_equal(model.first_stage_model, vae_sd)
    del raw["decoder.conv_out.bias"]
    torch.save(raw, tmp_path / "vae_broken.ckpt")
    with pytest.raises(StateDictMismatchError, match=r"decoder\.conv_out\.bias"):
        load_vae_finetune(model, tmp_path / "vae_broken.ckpt")


class _Payload:
    """Anything whose unpickling would call code outside torch's allow-list."""

    ran = False

    def __reduce__(self):
        return (_mark_ran, ())


def _mark_ran():
    _Payload.ran = True
    return "pwned"


def test_file_needing_arbitrary_unpickling_is_refused(tmp_path, source_model):
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"lastzc.bias": torch.zeros(4)}, "payload": _Payload()}, path)
    with pytest.raises(UnsafeCheckpointError, match="weights_only=True"):
        read_state_dict(path)
    assert not _Payload.ran


def test_non_tensor_state_dict_is_rejected(tmp_path):
    torch.save({"state_dict": {"a": torch.zeros(1), "b": 3}}, tmp_path / "odd.ckpt")
    with pytest.raises(Exception, match="not tensors"):
        read_state_dict(tmp_path / "odd.ckpt")


def test_paint_by_example_init_strict(tmp_path):
    model = tiny(0)
    new = ("control_model.", "model.diffusion_model.warp_flow_blks.", "model.diffusion_model.warp_zero_convs.",
           "lastzc.")
    pbe = {k: v.clone() for k, v in random_like_model(model, seed=5).items() if not k.startswith(new)}
    pbe["model.diffusion_model.input_blocks.0.0.weight"] = pbe["model.diffusion_model.input_blocks.0.0.weight"][:, :9]
    pbe[POSITION_IDS_KEY] = torch.arange(5)[None]
    torch.save({"state_dict": pbe}, tmp_path / "pbe.ckpt")
    report = init_from_paint_by_example(model, tmp_path / "pbe.ckpt")
    assert report.ok, report.summary()
    sd = model.state_dict()
    conv = sd["model.diffusion_model.input_blocks.0.0.weight"]
    assert torch.equal(conv[:, :9], pbe["model.diffusion_model.input_blocks.0.0.weight"]) and not conv[:, 9:].any()
    assert torch.equal(sd["control_model.middle_block.1.proj_in.weight"],
                       pbe["model.diffusion_model.middle_block.1.proj_in.weight"])
    assert torch.equal(sd["learnable_vector"], pbe["learnable_vector"])
    assert not sd["control_model.cond_first_block.0.weight"].any()

    del pbe["proj_out.weight"]
    with pytest.raises(StateDictMismatchError, match=r"missing keys \(1\): proj_out\.weight"):
        init_from_paint_by_example(tiny(0), pbe)
