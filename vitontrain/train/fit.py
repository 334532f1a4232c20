"""Assemble and run training from a :class:`FitConfig`: model (+ initial weights), data module, callbacks, trainer.

Resume: ``resume="auto"`` continues from ``{out_dir}/checkpoints/last.ckpt`` when it exists, so re-running the same
command after a crash or a pre-emption picks up where it stopped (weights, optimiser, step, EMA, data position).

Checkpoints leave the frozen weights out and carry the resolved config (``vitontrain.train.weights``); the run
folder gets the config too (``OUT_DIR/config.yaml``). ``stand_in_pretrained`` is re-exported here for
``bench/bench_train_step.py``, which imports it from this module.

Checkpoints are untrusted input (a ``last.ckpt`` can be planted in a run folder): every one is read by
:func:`vitontrain.checkpoints.read_checkpoint` (``torch.load(weights_only=True)``), Lightning's resume included
(:class:`WeightsOnlyIO`, re-exported here from ``vitontrain.train.checkpointing``, which also streams every save to
disk). Our checkpoints hold only tensors, plain containers and primitives, so nothing else is needed.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
from pytorch_lightning.strategies import DDPStrategy

from vitonprep import ConfigError
from vitontrain.checkpoints import CheckpointError, UnsafeCheckpointError, read_checkpoint
from vitontrain.data.module import ShardDataModule, expand_shard_specs
from vitontrain.data.shards import check_local_shards
from vitontrain.models.stableviton import StableVITONModel
from vitontrain.train.callbacks import RunConfigFile, SampleGrids, StepTiming, TrainedParamsEMA
from vitontrain.train.checkpointing import StepCheckpoint, WeightsOnlyIO
from vitontrain.train.config import FitConfig, TrainConfig
from vitontrain.train.memory import resolve_gradient_checkpointing
from vitontrain.train.system import StableVITONSystem
from vitontrain.train.weights import RunInfo, build_net, stand_in_pretrained, store_frozen_bf16

__all__ = ["FitRun", "build_fit", "run_fit", "build_net", "stand_in_pretrained", "resolve_launch",
           "resolve_strategy", "device_count", "WeightsOnlyIO", "ResumeAgreement"]

logger = logging.getLogger(__name__)

# Our loader has a length on purpose: the shard stream splits the epoch across workers itself (data/stream.py).
warnings.filterwarnings("ignore", message="Your `IterableDataset` has `__len__` defined")
# The system's on_after_batch_transfer (uint8 -> float on the device) is meant to be the one used.
warnings.filterwarnings("ignore", message="You have overridden `on_after_batch_transfer`")


@dataclass
class FitRun:
    trainer: pl.Trainer
    system: StableVITONSystem
    datamodule: ShardDataModule
    timing: StepTiming
    resume_from: Path | None


def checkpoint_dir(cfg: FitConfig) -> Path:
    return Path(cfg.train.out_dir) / "checkpoints"


def resolve_resume(cfg: FitConfig, resume: str | None) -> Path | None:
    """``auto``: last.ckpt when present; ``none``/None: start fresh; otherwise a checkpoint path (must exist).

    The file is read once here (memory-mapped, cheap) so that an unsafe or unreadable one is refused before the
    model is built; Lightning reads it again, through the same reader, when training starts."""
    if resume in (None, "none", ""):
        return None
    if resume == "auto":
        path = checkpoint_dir(cfg) / "last.ckpt"
        if not path.is_file():
            return None
    else:
        path = Path(resume)
        if not path.is_file():
            raise FileNotFoundError(f"resume checkpoint {path} not found")
    try:
        read_checkpoint(path)
    except UnsafeCheckpointError:
        raise
    except CheckpointError as exc:  # e.g. a last.ckpt cut short by a kill during its save
        raise CheckpointError(f"{exc}; pass --resume with an earlier {checkpoint_dir(cfg)}/step*.ckpt, or "
                              f"--resume none to start over") from exc
    return path


def checkpoint_step(path: Path | None) -> int | None:
    """The global step a checkpoint resumes at (memory-mapped read, cheap), None for a fresh start."""
    if path is None:
        return None
    return int(read_checkpoint(path).get("global_step", 0))


class ResumeAgreement(pl.Callback):
    """Every rank must resume from the same step. Each rank looks for ``last.ckpt`` on its own disk; with an
    ``out_dir`` that is not shared by every node, node 0 would resume at step N while the others start at 0 and the
    next collective would hang. Runs once the process group is up (``setup``), before Lightning reads the file."""

    def __init__(self, path: Path | None, step: int | None):
        self.view = (str(path) if path else None, step)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if trainer.world_size <= 1 or not torch.distributed.is_initialized():
            return
        views: list[Any] = [None] * trainer.world_size
        torch.distributed.all_gather_object(views, self.view)
        steps = [step for _, step in views]
        if len(set(steps)) > 1:  # every rank raises the same refusal: nothing waits on a collective
            first = steps[0]
            other = next(r for r, s in enumerate(steps) if s != first)
            raise CheckpointError(
                f"ranks disagree on where to resume: rank 0 {_view_text(views[0])}, rank {other} "
                f"{_view_text(views[other])}; train.out_dir must be one folder every node sees (an absolute path "
                f"on a shared file system), or pass --resume none / the same --resume path on every node")


def _view_text(view: tuple[str | None, int | None]) -> str:
    path, step = view
    return "starts from scratch" if path is None else f"resumes {path} at step {step}"


def build_fit(cfg: FitConfig, resume: str | None = "auto", progress: bool = True,
              extra_callbacks: list[pl.Callback] | None = None, logger_backends: bool = True,
              net: StableVITONModel | None = None) -> FitRun:
    """Everything `fit` needs; ``net`` replaces the model the config would build (e.g. one built on ``meta``)."""
    cfg = resolve_gradient_checkpointing(cfg)  # `auto` decided for this machine; the run's config records it
    t = cfg.train
    # a missing shard folder or a truncated local shard fails here, before minutes of model building
    check_local_shards(expand_shard_specs(cfg.data.shards))
    resume_from = resolve_resume(cfg, resume)  # and so does an unsafe or unreadable checkpoint
    pl.seed_everything(t.seed, workers=True)  # model initialisation; step draws are seeded per batch (system.py)
    net = build_net(cfg) if net is None else net
    info = RunInfo.of(cfg, net)  # before the frozen weights change dtype or layout: the refill rebuilds them as built
    if t.precision == "bf16-mixed":
        n = store_frozen_bf16(net)
        logger.info("bf16-mixed: %d frozen VAE/CLIP weight tensors stored in bf16", n)
    if t.channels_last:
        net.use_channels_last()
    system = StableVITONSystem(net, t, info)
    datamodule = ShardDataModule(cfg.data)
    out = Path(t.out_dir)
    timing = StepTiming()
    callbacks: list[pl.Callback] = [ResumeAgreement(resume_from, checkpoint_step(resume_from)), timing,
                                    RunConfigFile(out / "config.yaml", info.config_yaml)]
    if t.ema.enabled:
        callbacks.append(TrainedParamsEMA(t.ema.decay, t.ema.every_n_steps))
    if t.sample_every_n_steps:
        callbacks.append(SampleGrids(out, t.sample_every_n_steps, t.sample_count, t.sample_steps,
                                     t.sample_guidance, t.seed))
    if not t.checkpoint_every_n_steps and not t.save_last:
        logger.warning("train.checkpoint_every_n_steps is 0 and train.save_last is false: this run saves no "
                       "checkpoint")
    callbacks.append(StepCheckpoint(checkpoint_dir(cfg), t.checkpoint_every_n_steps, t.keep_checkpoints,
                                    t.save_last))
    if progress:
        from pytorch_lightning.callbacks import RichProgressBar

        callbacks.append(RichProgressBar())
    callbacks.extend(extra_callbacks or [])
    loggers: Any = False
    if logger_backends:
        loggers = [CSVLogger(out, name="logs"), _tensorboard(out)]
        loggers = [lg for lg in loggers if lg is not None]
    launch = resolve_launch(t)
    trainer = pl.Trainer(
        accelerator=t.accelerator, devices=launch.devices, num_nodes=t.num_nodes,
        strategy=resolve_strategy(t, launch.world_size, net.trainable_mode),
        precision=t.precision, max_steps=t.max_steps, max_epochs=-1,
        accumulate_grad_batches=t.accumulate_grad_batches, gradient_clip_val=t.gradient_clip_val,
        callbacks=callbacks, logger=loggers, log_every_n_steps=t.log_every_n_steps,
        enable_progress_bar=progress, enable_model_summary=False, num_sanity_val_steps=0,
        use_distributed_sampler=False,   # the shard stream splits by rank itself
        deterministic=t.deterministic, benchmark=not t.deterministic, default_root_dir=out,
        plugins=[WeightsOnlyIO()],
    )
    return FitRun(trainer, system, datamodule, timing, resume_from)


@dataclass(frozen=True)
class Launch:
    devices: Any        # what the Trainer is given
    world_size: int     # processes in the run, all nodes


def resolve_launch(t: TrainConfig, environ: Mapping[str, str] | None = None) -> Launch:
    """The world size this run will really have, from the launcher's environment when there is one (torchrun,
    SLURM srun), else from ``devices`` × ``num_nodes`` as Lightning will read them (``auto``, -1, "0,1", "2", lists).

    Under a launcher, ``devices: auto`` becomes the launcher's processes per node: Lightning alone would count
    one CPU device and train every process on its own, unsynchronised."""
    env = os.environ if environ is None else environ
    launched = int(env.get("WORLD_SIZE") or env.get("SLURM_NTASKS") or 0)
    per_node = int(env.get("LOCAL_WORLD_SIZE") or env.get("SLURM_NTASKS_PER_NODE", "").split("(")[0] or 0)
    if launched:
        devices = t.devices
        if _is_auto(t.devices) and per_node:
            devices = per_node
            if launched != per_node * t.num_nodes:
                raise ConfigError(f"the launcher started {launched} processes, {per_node} per node, but "
                                  f"train.num_nodes is {t.num_nodes}: set train.num_nodes={launched // per_node}")
        return Launch(devices, launched)
    return Launch(t.devices, device_count(t.accelerator, t.devices) * t.num_nodes)


def _is_auto(devices: Any) -> bool:
    return devices in ("auto", -1, "-1")


def device_count(accelerator: str, devices: Any) -> int:
    """Devices per node as Lightning parses ``devices``: an int or "2" is a count, "0,1" / "1," / a list name
    indices, ``auto`` / -1 all visible accelerators (one for CPU)."""
    if isinstance(devices, (list, tuple)):
        return len(devices)
    if _is_auto(devices):
        if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
            return torch.cuda.device_count()
        return 1
    if isinstance(devices, str):
        if "," in devices:
            return len([d for d in devices.split(",") if d.strip()])
        return int(devices)
    return int(devices)


def resolve_strategy(t: TrainConfig, world_size: int, trainable_mode: str) -> Any:
    """``auto`` with more than one process: DDP with a static graph when only parameters that get a gradient at
    every step are trained (``trainable: effective``; both CFG branches are always in the graph), which skips the
    per-step search for unused parameters and lets gradients live in the all-reduce buckets. The official
    optimizer set (``trainable: official``) lists ~174 M parameters that never get a gradient: DDP must then look
    for unused parameters at every step."""
    if t.strategy != "auto" or world_size <= 1:
        return t.strategy
    if trainable_mode == "effective":
        return DDPStrategy(find_unused_parameters=False, static_graph=True, gradient_as_bucket_view=True)
    logger.warning("model.params.trainable is %r: parameters without gradients are in DDP, which then searches for "
                   "unused parameters at every step (set trainable: effective to avoid it)", trainable_mode)
    return DDPStrategy(find_unused_parameters=True, gradient_as_bucket_view=True)


def _tensorboard(out: Path) -> TensorBoardLogger | None:
    try:
        return TensorBoardLogger(out, name="tb")
    except ModuleNotFoundError:  # tensorboard is optional; CSV logs are always written
        logger.warning("tensorboard is not installed: logging to CSV only (pip install tensorboard)")
        return None


def run_fit(run: FitRun) -> None:
    if run.resume_from is not None:
        logger.info("resuming from %s", run.resume_from)
    torch.set_float32_matmul_precision("high")
    run.trainer.fit(run.system, datamodule=run.datamodule,
                    ckpt_path=str(run.resume_from) if run.resume_from else None, weights_only=True)
