"""Issue 20 items 1, 3, 7: the world size a run really has, the strategy it gets, and the settings refused."""

from __future__ import annotations

import pytest
from pytorch_lightning.strategies import DDPStrategy

from vitonprep.errors import ConfigError
from vitontrain.train.config import TrainConfig
from vitontrain.train.fit import device_count, resolve_launch, resolve_strategy


@pytest.mark.parametrize("accelerator,devices,count", [
    ("cpu", "auto", 1), ("cpu", -1, 1), ("gpu", "0,1", 2), ("gpu", "1,", 1), ("gpu", "2", 2), ("gpu", 3, 3),
    ("gpu", [0, 1], 2)])
def test_device_count_reads_devices_as_lightning_does(accelerator, devices, count):
    assert device_count(accelerator, devices) == count


def test_launcher_environment_decides_the_world_size():
    t = TrainConfig(accelerator="cpu", devices="auto")
    launch = resolve_launch(t, {"WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2"})
    assert (launch.devices, launch.world_size) == (2, 2)  # not Lightning's one CPU device per process
    assert resolve_launch(t, {}).world_size == 1
    slurm = resolve_launch(TrainConfig(num_nodes=2, out_dir="/shared/run"),
                           {"SLURM_NTASKS": "16", "SLURM_NTASKS_PER_NODE": "8(x2)"})
    assert (slurm.devices, slurm.world_size) == (8, 16)
    with pytest.raises(ConfigError, match="set train.num_nodes=2"):
        resolve_launch(t, {"WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2"})


def test_several_processes_get_a_static_ddp_graph():
    t = TrainConfig(devices="2")
    static = resolve_strategy(t, 2, "effective")
    assert isinstance(static, DDPStrategy)
    assert static._ddp_kwargs == {"find_unused_parameters": False, "static_graph": True,
                                  "gradient_as_bucket_view": True}
    assert resolve_strategy(t, 2, "official")._ddp_kwargs["find_unused_parameters"] is True
    assert resolve_strategy(t, 1, "effective") == "auto"
    assert resolve_strategy(TrainConfig(strategy="ddp"), 2, "effective") == "ddp"  # an explicit choice is kept


def test_bf16_true_and_relative_multi_node_out_dir_are_refused():
    with pytest.raises(ConfigError, match="bf16-mixed"):
        TrainConfig(precision="bf16-true")
    with pytest.raises(ConfigError, match="absolute path"):
        TrainConfig(num_nodes=2, out_dir="runs/stableviton")
    assert TrainConfig(num_nodes=2, out_dir="/shared/runs/stableviton").num_nodes == 2
