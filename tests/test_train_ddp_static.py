"""Issue 20 item 1: DDP with the devices given as the shipped config gives them (``auto``, or a string such as
"2"), 2 CPU processes (gloo) launched as torchrun would. Before the fix, "2" got Lightning's plain ``ddp`` and
failed at step 2 ("Expected to have finished reduction in the prior iteration"), and ``auto`` trained each process
on its own (Lightning counts one CPU device); now both train with a static graph."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "helpers" / "ddp_fit_worker.py"


def run_two_ranks(shards: Path, out: Path, *overrides: str,
                  timeout: float = 900) -> tuple[subprocess.CompletedProcess, list[dict]]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(WORKER),
           str(shards), str(out), *overrides]
    out.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:  # a hung collective: stop the workers too, not only torchrun
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    result = subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)
    ranks = [json.loads(p.read_text()) for p in sorted(out.glob("rank*.json"))]
    return result, ranks


# the shipped config's own setting runs in the default suite (~18 s); the string form is the same path, slow
@pytest.mark.parametrize("devices", ["auto", pytest.param("'2'", marks=pytest.mark.slow)])
def test_shipped_devices_setting_trains_with_a_static_ddp_graph(train_shards, tmp_path, devices):
    result, ranks = run_two_ranks(train_shards, tmp_path, f"train.devices={devices}", "train.strategy=auto",
                                  "train.max_steps=3", "data.epoch_samples=6")
    assert result.returncode == 0, result.stderr[-3000:]
    assert [r["world"] for r in ranks] == [2, 2] and [r["step"] for r in ranks] == [3, 3]
    static = {"find_unused_parameters": False, "static_graph": True, "gradient_as_bucket_view": True}
    assert [r["ddp"] for r in ranks] == [static, static]
    assert [r["checkpoint_io"] for r in ranks] == ["WeightsOnlyIO", "WeightsOnlyIO"]  # resume stays weights-only
    assert ranks[0]["final"] == ranks[1]["final"] != ranks[0]["initial"]


@pytest.mark.slow
def test_resume_seen_by_rank_0_only_is_refused_on_every_rank(train_shards, tmp_path):
    """Issue 20 item 3: node-local out_dirs, where only rank 0 finds last.ckpt. Before the fix rank 0 resumed at
    step 2 and rank 1 started at 0, and the run hung in its next collective."""
    first, ranks = run_two_ranks(train_shards, tmp_path / "first", f"train.out_dir={tmp_path}/shared",
                                 "train.strategy=auto", "train.checkpoint_every_n_steps=2")
    assert first.returncode == 0 and [r["step"] for r in ranks] == [2, 2], first.stderr[-3000:]
    (tmp_path / "r0/checkpoints").mkdir(parents=True)
    shutil.copy(tmp_path / "shared/checkpoints/last.ckpt", tmp_path / "r0/checkpoints/last.ckpt")
    os.environ["DDP_RESUME"] = "auto"
    try:
        result, ranks = run_two_ranks(train_shards, tmp_path / "second", f"train.out_dir={tmp_path}/r{{rank}}",
                                      "train.strategy=auto", "train.max_steps=4", timeout=240)
    finally:
        del os.environ["DDP_RESUME"]
    assert result.returncode != 0 and not ranks
    assert "ranks disagree on where to resume: rank 0 resumes" in result.stderr
    assert "at step 2, rank 1 starts from scratch" in result.stderr
