"""Checkpoint saving (issue 19): streamed to disk atomically, one file per step across resumes, the final save
and the periodic saves can be turned off."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
import torch

import vitontrain.train.checkpointing as checkpointing
from vitonprep import ConfigError
from vitontrain.checkpoints import read_checkpoint
from vitontrain.train.checkpointing import WeightsOnlyIO, stream_save
from vitontrain.train.config import load_fit_config
from vitontrain.train.fit import build_fit, run_fit

SMALL = ["data.height=64", "data.width=64", "data.batch_size=1", "data.num_workers=0", "data.shuffle_buffer=0",
         "data.epoch_samples=4", "data.pairs=[paired,unpaired]", "train.sample_every_n_steps=0",
         "train.log_every_n_steps=1", "train.seed=5", "train.ema.enabled=false"]


def fit_to(shards: Path, out: Path, resume: str, *extra: str):
    cfg = load_fit_config("tiny", [f"data.shards=[{shards}]", f"train.out_dir={out}", *SMALL, *extra])
    run = build_fit(cfg, resume=resume, progress=False, logger_backends=False)
    run_fit(run)
    return run


def listing(folder: Path) -> dict[str, str]:
    """name -> link target, or '' for a file (hidden temporaries included)."""
    return {p.name: os.readlink(p) if p.is_symlink() else "" for p in sorted(folder.iterdir())}


def test_stream_save_replaces_atomically_and_leaves_nothing_on_failure(tmp_path):
    path = tmp_path / "c.ckpt"
    stream_save({"w": torch.arange(4.0)}, path)
    assert torch.equal(read_checkpoint(path)["w"], torch.arange(4.0))
    mode = path.stat().st_mode & 0o777
    assert mode == 0o666 & ~_umask()  # the permissions an ordinary open() gives, not mkstemp's 0600
    with pytest.raises(TypeError, match="pickle"):  # a lock cannot be pickled: the save fails halfway
        stream_save({"w": torch.ones(3), "bad": threading.Lock()}, path)
    assert [p.name for p in tmp_path.iterdir()] == ["c.ckpt"]  # no temporary left behind
    assert torch.equal(read_checkpoint(path)["w"], torch.arange(4.0))  # the previous file is whole


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_local_saves_stream_and_remote_ones_keep_lightnings_writer(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("lightning_fabric.plugins.io.torch_io._atomic_save", lambda c, p: calls.append(str(p)))
    io = WeightsOnlyIO()
    io.save_checkpoint({"w": torch.ones(2)}, tmp_path / "local.ckpt")
    assert calls == [] and torch.equal(io.load_checkpoint(tmp_path / "local.ckpt")["w"], torch.ones(2))
    io.save_checkpoint({"w": torch.ones(2)}, "memory://bucket/remote.ckpt")  # fsspec URL: Lightning's path
    assert calls == ["memory://bucket/remote.ckpt"]
    streamed = []
    monkeypatch.setattr(checkpointing, "stream_save", lambda c, p: streamed.append(str(p)))
    io.save_checkpoint({}, tmp_path / "again.ckpt")
    assert streamed == [str(tmp_path / "again.ckpt")]


@pytest.mark.slow  # four tiny fits
def test_resumed_runs_never_save_a_step_twice_and_last_follows_the_newest(train_shards, tmp_path):
    """Before: the resumed run wrote last-v1.ckpt (last.ckpt stayed on step 3, so the next resume went back there),
    and a run resumed from that stale link re-saved step 6 as step0000006-v1.ckpt."""
    out, ckpts = tmp_path / "run", tmp_path / "run/checkpoints"
    fit_to(train_shards, out, "auto", "train.max_steps=3", "train.checkpoint_every_n_steps=3")
    assert listing(ckpts) == {"last.ckpt": "step0000003.ckpt", "step0000003.ckpt": ""}
    fit_to(train_shards, out, "auto", "train.max_steps=6", "train.checkpoint_every_n_steps=3")  # "killed" at 3
    assert listing(ckpts) == {"last.ckpt": "step0000006.ckpt", "step0000003.ckpt": "", "step0000006.ckpt": ""}
    step6 = (ckpts / "step0000006.ckpt").stat()
    # resumed where it ended: nothing to train, nothing re-saved
    run = fit_to(train_shards, out, "auto", "train.max_steps=6", "train.checkpoint_every_n_steps=3")
    assert run.trainer.global_step == 6
    assert (ckpts / "step0000006.ckpt").stat().st_ino == step6.st_ino
    # resumed from an earlier step file: the same steps again replace their files
    fit_to(train_shards, out, str(ckpts / "step0000003.ckpt"), "train.max_steps=6", "train.checkpoint_every_n_steps=3")
    assert listing(ckpts) == {"last.ckpt": "step0000006.ckpt", "step0000003.ckpt": "", "step0000006.ckpt": ""}
    assert read_checkpoint(ckpts / "last.ckpt")["global_step"] == 6


@pytest.mark.slow  # three tiny fits
def test_final_save_and_periodic_saves_can_be_turned_off(train_shards, tmp_path):
    fit_to(train_shards, tmp_path / "final", "none", "train.max_steps=2", "train.checkpoint_every_n_steps=0")
    assert listing(tmp_path / "final/checkpoints") == {"last.ckpt": "step0000002.ckpt", "step0000002.ckpt": ""}
    fit_to(train_shards, tmp_path / "none", "none", "train.max_steps=2", "train.checkpoint_every_n_steps=0",
           "train.save_last=false")
    assert not (tmp_path / "none/checkpoints").exists() or listing(tmp_path / "none/checkpoints") == {}
    fit_to(train_shards, tmp_path / "periodic", "none", "train.max_steps=3", "train.checkpoint_every_n_steps=2",
           "train.save_last=false")  # step 3 is not saved; last.ckpt links the newest periodic save
    assert listing(tmp_path / "periodic/checkpoints") == {"last.ckpt": "step0000002.ckpt", "step0000002.ckpt": ""}


@pytest.mark.parametrize("override", ["train.checkpoint_every_n_steps=-1", "train.sample_every_n_steps=-5",
                                      "train.keep_checkpoints=0"])
def test_negative_save_intervals_are_refused(override):
    with pytest.raises(ConfigError, match="train"):
        load_fit_config("tiny", ["data.shards=[x]", override])
