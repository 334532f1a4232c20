"""Training through persistent DataLoader workers: a run killed mid-epoch and resumed from its checkpoint ends with
the weights of the uninterrupted run, over several epochs (each later epoch's shuffle buffer read ahead)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vitontrain.data.module import ResumableLoader
from vitontrain.train.config import load_fit_config
from vitontrain.train.fit import build_fit, run_fit

# 2 workers, batch 1, 2 batches per epoch: step 3 is the middle of epoch 1, step 5 the first batch of epoch 2
SETTINGS = ["data.height=64", "data.width=64", "data.batch_size=1", "data.num_workers=2", "data.shuffle_buffer=4",
            "data.epoch_samples=2", "data.pairs=[paired,unpaired]", "train.sample_every_n_steps=0",
            "train.log_every_n_steps=1", "train.seed=5", "train.checkpoint_every_n_steps=3", "train.ema.enabled=false"]


def run(shards: Path, out: Path, max_steps: int, resume: str = "none"):
    cfg = load_fit_config("tiny", [f"data.shards=[{shards}]", f"train.out_dir={out}", *SETTINGS,
                                   f"train.max_steps={max_steps}"])
    fit = build_fit(cfg, resume=resume, progress=False, logger_backends=False)
    run_fit(fit)
    return fit


def trained(fit) -> dict[str, torch.Tensor]:
    wanted = {id(p) for p in fit.system.net.optimizer_parameters()}
    return {n: p.detach().clone() for n, p in fit.system.net.named_parameters() if id(p) in wanted}


@pytest.mark.slow  # three tiny fits through worker processes: ~1 min on 2 cores
@pytest.mark.usefixtures("one_torch_thread")
def test_kill_and_resume_through_persistent_workers_over_epochs(train_shards, tmp_path):
    straight = run(train_shards, tmp_path / "a", 5)
    loader = straight.trainer.train_dataloader
    assert isinstance(loader, ResumableLoader) and loader.persistent_workers
    assert loader.state_dict()["epoch"] == 2  # the run went through three epochs
    run(train_shards, tmp_path / "b", 3)
    ckpt = tmp_path / "b/checkpoints/step0000003.ckpt"
    assert ckpt.is_file()
    resumed = run(train_shards, tmp_path / "b", 5, resume=str(ckpt))
    assert straight.trainer.global_step == resumed.trainer.global_step == 5
    a, b = trained(straight), trained(resumed)
    assert all(torch.equal(a[n], b[n]) for n in a), [n for n in a if not torch.equal(a[n], b[n])][:5]
