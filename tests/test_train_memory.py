"""`train.gradient_checkpointing: auto` (vitontrain/train/memory.py): decided from the GPU's memory and the batch."""

from __future__ import annotations

from dataclasses import replace

import pytest

from vitonprep import ConfigError
from vitontrain.train.config import TrainConfig, load_fit_config
from vitontrain.train.memory import GIB, resolve_gradient_checkpointing


def _decide(batch: int, gpu_gib: float | None, accelerator: str = "auto") -> bool | None:
    cfg = load_fit_config("stableviton", [f"data.batch_size={batch}", f"train.accelerator={accelerator}"])
    assert cfg.train.gradient_checkpointing == "auto"  # what the shipped config asks for
    gpu = None if gpu_gib is None else int(gpu_gib * GIB)
    decided = resolve_gradient_checkpointing(cfg, gpu_memory=lambda: gpu)
    assert decided.data == cfg.data and decided.model == cfg.model
    return decided.train.gradient_checkpointing


@pytest.mark.parametrize("batch, gpu_gib, expected", [
    (4, 23.6, False),    # a 24 GB card holds batch 4 without checkpointing
    (16, 23.6, True),    # but not batch 16 (the shipped batch)
    (16, 39.4, False),   # a 40 GB card does
    (16, 79.1, False),
    (96, 79.1, True),
])
def test_auto_turns_checkpointing_off_where_the_gpu_holds_the_step(batch, gpu_gib, expected):
    assert _decide(batch, gpu_gib) is expected


def test_auto_leaves_the_model_setting_on_the_cpu():
    assert _decide(4, None) is None
    assert _decide(4, 80.0, accelerator="cpu") is None  # a GPU present but not used


def test_fork_launches_do_not_query_cuda():
    """Lightning's ddp_fork refuses to fork once CUDA is initialised, and asking for the memory initialises it."""
    cfg = load_fit_config("stableviton", ["train.strategy=ddp_fork"])

    def must_not_be_called() -> int:
        raise AssertionError("CUDA queried before forking")

    assert resolve_gradient_checkpointing(cfg, gpu_memory=must_not_be_called).train.gradient_checkpointing is None


def test_the_decision_reaches_the_model_config():
    cfg = load_fit_config("stableviton", ["data.batch_size=4"])
    assert "gradient_checkpointing" not in cfg.model_config()["params"]  # undecided: never passed to the model
    off = resolve_gradient_checkpointing(cfg, gpu_memory=lambda: 24 * GIB)
    assert off.model_config()["params"]["gradient_checkpointing"] is False
    on = resolve_gradient_checkpointing(replace(cfg, data=replace(cfg.data, batch_size=16)),
                                        gpu_memory=lambda: 24 * GIB)
    assert on.model_config()["params"]["gradient_checkpointing"] is True


@pytest.mark.parametrize("value", ["yes", 1, "Auto"])
def test_other_values_are_refused(value):
    with pytest.raises(ConfigError, match="gradient_checkpointing"):
        TrainConfig(gradient_checkpointing=value)
