"""One rank of the 2-process DDP test (launched by torch.distributed.run from tests/test_train_ddp.py).

Trains the tiny configuration for a few steps with partitioned shards and writes, per rank, the sample keys it saw
and a digest of its trained weights to OUT/rank{N}.json.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import pytorch_lightning as pl
import torch

from vitontrain.train.config import load_fit_config
from vitontrain.train.fit import build_fit, run_fit


class RecordKeys(pl.Callback):
    def __init__(self) -> None:
        self.keys: list[str] = []
        self.ddp: dict | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.keys.extend(batch["__key__"])
        self.ddp = ddp_settings(trainer)  # while training: Lightning unwraps the model at teardown


def digest(system) -> str:
    h = hashlib.sha256()
    for p in system.net.optimizer_parameters():
        h.update(p.detach().cpu().numpy().tobytes())
    return h.hexdigest()


def ddp_settings(trainer) -> dict | None:
    ddp = getattr(trainer.strategy, "model", None)
    if not isinstance(ddp, torch.nn.parallel.DistributedDataParallel):
        return None
    return {"find_unused_parameters": ddp.find_unused_parameters, "static_graph": ddp.static_graph,
            "gradient_as_bucket_view": ddp.gradient_as_bucket_view}


def main(shards: str, out: str, *overrides: str) -> None:
    """``overrides`` (KEY=VALUE) are applied after the defaults below; ``{rank}`` in them is this process's rank
    (e.g. a folder per rank, as nodes without a shared file system would have). DDP_RESUME: fit's --resume."""
    overrides = tuple(o.replace("{rank}", os.environ.get("RANK", "0")) for o in overrides)
    cfg = load_fit_config("tiny", [
        f"data.shards=[{shards}]", f"train.out_dir={out}/run", "data.height=64", "data.width=64",
        "data.batch_size=1", "data.num_workers=0", "data.sampling=partitioned", "data.shuffle_buffer=0",
        "data.epoch_samples=4", "data.pairs=[paired,unpaired]", "train.max_steps=2", "train.sample_every_n_steps=0",
        "train.checkpoint_every_n_steps=100", "train.ema.enabled=false", "train.accelerator=cpu", "train.devices=2",
        "train.strategy=ddp_find_unused_parameters_true", *overrides])
    recorder = RecordKeys()
    run = build_fit(cfg, resume=os.environ.get("DDP_RESUME", "none"), progress=False, extra_callbacks=[recorder],
                    logger_backends=False)
    initial = digest(run.system)
    run_fit(run)
    rank = run.trainer.global_rank
    Path(out, f"rank{rank}.json").write_text(json.dumps({
        "rank": rank, "world": run.trainer.world_size, "keys": recorder.keys, "initial": initial,
        "final": digest(run.system), "step": run.trainer.global_step,
        "backend": torch.distributed.get_backend() if torch.distributed.is_initialized() else None,
        "ddp": recorder.ddp, "checkpoint_io": type(run.trainer.strategy.checkpoint_io).__name__}))


if __name__ == "__main__":
    main(*sys.argv[1:])
