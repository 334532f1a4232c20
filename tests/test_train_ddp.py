"""DDP with 2 CPU processes (gloo), launched as torchrun would: ranks read disjoint samples and end with identical
weights (gradients synchronised) that differ from the start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

WORKER = Path(__file__).resolve().parent / "helpers" / "ddp_fit_worker.py"


def test_two_process_ddp_disjoint_samples_synchronised_gradients(train_shards, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(WORKER),
           str(train_shards), str(tmp_path)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2] and [r["backend"] for r in ranks] == ["gloo", "gloo"]
    assert [r["step"] for r in ranks] == [2, 2] and all(len(r["keys"]) == 2 for r in ranks)
    keys0, keys1 = set(ranks[0]["keys"]), set(ranks[1]["keys"])
    assert keys0 and keys1 and not (keys0 & keys1), (keys0, keys1)
    assert ranks[0]["final"] == ranks[1]["final"]          # same weights after steps on different data
    assert ranks[0]["final"] != ranks[0]["initial"]        # and they did move
