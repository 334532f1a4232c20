"""Every YAML in pipelines/train/ instantiates; the target/params loader refuses anything outside vitontrain."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vitontrain.models import ConfigError, StableVITONModel, build_model, instantiate_from_config
from vitontrain.models.instantiate import load_config

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests/fixtures/stableviton_state_dict_keys.tsv"
CONFIGS = sorted((ROOT / "pipelines/train").glob("*.yaml"))


def test_train_configs_exist():
    names = {p.name for p in CONFIGS}
    assert {"stableviton.yaml", "tiny.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_train_yaml_instantiates_on_meta(path):
    with torch.device("meta"):
        model = build_model(path)
    assert isinstance(model, StableVITONModel)
    # Same denoiser topology whatever the widths: UNet, warp blocks, spatial encoder and top-level keys are the
    # official ones (the tiny VAE / CLIP have fewer blocks).
    keep = ("model.diffusion_model.", "control_model.", "proj_out.", "lastzc.")
    official = [line.split("\t")[0] for line in FIXTURE.read_text().splitlines() if line and not line.startswith("#")]
    ours = list(model.state_dict())
    assert [k for k in ours if k.startswith(keep) or "." not in k] == [
        k for k in official if k.startswith(keep) or "." not in k]


def test_tiny_yaml_instantiates_on_cpu_with_the_full_topology():
    model = build_model(ROOT / "pipelines/train/tiny.yaml")
    assert next(model.parameters()).device.type == "cpu"
    assert len(model.unet.warp_flow_blks) == 9 and len(model.control_model.input_blocks) == 12
    assert sum(p.numel() for p in model.parameters()) < 20_000_000


def test_full_yaml_matches_official_values():
    params = load_config(ROOT / "pipelines/train/stableviton.yaml")["model"]["params"]
    assert (params["linear_start"], params["linear_end"], params["timesteps"]) == (0.00085, 0.012, 1000)
    assert params["scale_factor"] == 0.18215 and params["u_cond_percent"] == 0.2
    unet = params["unet_config"]["params"]
    assert (unet["in_channels"], unet["model_channels"], unet["channel_mult"], unet["context_dim"]) == (
        13, 320, [1, 2, 4, 4], 768)
    assert params["first_stage_config"]["params"]["ddconfig"]["ch"] == 128


def test_instantiate_refuses_targets_outside_vitontrain():
    for target in ("os.system", "torch.nn.Identity", "builtins.eval", "vitontrain"):
        with pytest.raises(ConfigError, match="only classes inside the 'vitontrain' package"):
            instantiate_from_config({"target": target, "params": {}})


def test_instantiate_errors_are_clear():
    with pytest.raises(ConfigError, match="unknown keys"):
        instantiate_from_config({"target": "vitontrain.models.vae.AutoencoderKL", "parms": {}})
    with pytest.raises(ConfigError, match="no attribute 'Nope'"):
        instantiate_from_config({"target": "vitontrain.models.vae.Nope"})
    with pytest.raises(ConfigError, match="unexpected keyword argument 'chanels'"):
        instantiate_from_config({"target": "vitontrain.models.unet.StableVITONUNet", "params": {"chanels": 3}})
    with pytest.raises(ConfigError, match="'target'"):
        instantiate_from_config({"params": {}})
