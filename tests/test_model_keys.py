"""The full StableVITON model matches the official checkpoint layout key by key (built on the meta device)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from vitontrain.models import StableVITONModel, build_model

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests/fixtures/stableviton_state_dict_keys.tsv"
FULL = ROOT / "pipelines/train/stableviton.yaml"


def fixture_keys() -> dict[str, tuple[int, ...]]:
    rows = {}
    for line in FIXTURE.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, shape = line.split("\t")
        rows[key] = tuple(ast.literal_eval(shape))
    return rows


@pytest.fixture(scope="module")
def full_meta() -> StableVITONModel:
    with torch.device("meta"):
        return build_model(FULL)


def test_fixture_has_1957_rows():
    assert len(fixture_keys()) == 1957


def test_full_state_dict_equals_official_fixture(full_meta):
    expected = fixture_keys()
    ours = {k: tuple(v.shape) for k, v in full_meta.state_dict().items()}
    missing = [k for k in expected if k not in ours]
    extra = [k for k in ours if k not in expected]
    wrong = [f"{k}: ours {list(ours[k])} official {list(v)}" for k, v in expected.items() if k in ours and ours[k] != v]
    assert not missing, f"{len(missing)} official keys missing: {missing[:30]}"
    assert not extra, f"{len(extra)} keys not in the official checkpoint: {extra[:30]}"
    assert not wrong, f"{len(wrong)} shape differences: {wrong[:30]}"
    assert list(ours) == list(expected), "same keys, but not in the official state-dict order"


def test_full_parameter_counts_match_spec(full_meta):
    named = dict(full_meta.named_parameters())
    assert sum(p.numel() for p in named.values()) == 1_838_680_959
    official = full_meta.trainable_parameter_names("official")
    assert sum(named[n].numel() for n in official) == 529_355_008  # official optimizer set
    effective = full_meta.trainable_parameter_names("effective")
    assert sum(named[n].numel() for n in effective) == 355_255_168  # the parameters that ever get a gradient
    # the shipped config trains the effective set (static DDP graph, issue 20)
    assert sum(p.numel() for p in full_meta.optimizer_parameters()) == 355_255_168
    parts = {
        "model.diffusion_model.warp_flow_blks.": 171_783_680,
        "model.diffusion_model.warp_zero_convs.": 7_994_880,
        "control_model.": 348_750_720,
        "first_stage_model.": 83_653_863,
        "cond_stage_model.transformer.": 303_179_776,
    }
    for prefix, n in parts.items():
        assert sum(p.numel() for k, p in named.items() if k.startswith(prefix)) == n, prefix


def test_full_frozen_and_trainable_sets(full_meta):
    trainable = set(full_meta.trainable_parameter_names("official"))
    prefixes = ("control_model.", "model.diffusion_model.input_blocks.0.", "model.diffusion_model.warp_flow_blks.",
                "model.diffusion_model.warp_zero_convs.", "proj_out.")
    for name, _ in full_meta.named_parameters():
        assert (name in trainable) == (name.startswith(prefixes) or name == "learnable_vector"), name
    assert not any(n.startswith(("first_stage_model.", "cond_stage_model.", "lastzc.")) for n in trainable)


def test_zero_cross_attention_placement(full_meta):
    unet = full_meta.unet
    # (query channels, key channels, heads·d_head) of warp_flow_blks.0..8
    expected = [(1280, 1280), (1280, 1280), (1280, 640), (1280, 640), (640, 640), (640, 320), (640, 320),
                (320, 320), (320, 320)]
    got = [(blk.proj_in.in_channels, blk.transformer_blocks[0].attn2.to_k.in_features) for blk in unet.warp_flow_blks]
    assert got == expected
    assert [blk.atv for blk in unet.warp_flow_blks] == [i == 4 for i in range(9)]
    assert [blk.transformer_blocks[0].attn2.dim_head for blk in unet.warp_flow_blks] == [160] * 4 + [80] * 3 + [40] * 2
    assert list(unet.control_indices_used) == list(range(9))
