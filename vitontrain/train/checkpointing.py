"""How `fit` writes and reads its checkpoint files: streamed to disk, read weights-only, one file per step.

* :class:`WeightsOnlyIO` — Lightning's checkpoint I/O with our reader (``torch.load(weights_only=True)``, every
  refusal names the file) and a streaming writer. Lightning's own writer (``lightning_fabric.utilities.cloud_io.
  _atomic_save``) pickles the whole checkpoint into an ``io.BytesIO`` and then writes ``getvalue()``: two serialised
  copies in host memory on top of the model (at full size the process then outgrew 22 GB). Here a local path is
  written by ``torch.save`` straight into a temporary file beside the target (tensors go from their storage to the
  file, no copy), fsynced, then renamed over the target (``os.replace``): a kill mid-save leaves the previous file
  and at worst a ``.*.tmp`` file, never a partial checkpoint. Remote URLs keep Lightning's fsspec writer.
  Nothing needs copying before the write: Lightning's ``dump_checkpoint`` holds references to the model's and
  AdamW's tensors (``state_dict()`` does not clone them), and rank 0 alone copies GPU tensors to the host.
* :class:`StepCheckpoint` — ``stepNNNNNNN.ckpt`` every ``train.checkpoint_every_n_steps`` (0: none) and at the end
  of training (``train.save_last``), ``last.ckpt`` a link to the newest. A step file of the same name is the same
  step of the same run (a resume repeats the steps after its checkpoint): it is replaced, never saved beside as
  ``-v1``, and ``last.ckpt`` always follows the newest save. A resumed run does not save again the step it
  resumed at.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.cloud_io import _is_local_file_protocol
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.plugins.io import TorchCheckpointIO

from vitontrain.checkpoints import read_checkpoint

__all__ = ["WeightsOnlyIO", "StepCheckpoint", "stream_save"]


def stream_save(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj)`` into ``path`` atomically without serialising it in memory first: a temporary file in
    the same folder (same file system, so the rename is atomic), fsynced, renamed over ``path``, the folder
    fsynced (the rename survives a power cut)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # the umask's permissions, as open() gives
    try:
        torch.save(obj, tmp)  # a path: torch's own file writer, record by record from each tensor's storage
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # not every file system lets a folder be opened for fsync
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    return path


class WeightsOnlyIO(TorchCheckpointIO):
    """Lightning's checkpoint reader replaced by ours (weights only, file named in every refusal), and its writer
    by :func:`stream_save` for local paths. Reads are memory-mapped: the ranks of a node share one page-cached copy
    instead of each holding the whole file. Safe because no checkpoint file is rewritten in place: a save renames
    a new file over the old name (an open mapping keeps the old file), ``last.ckpt`` is a link to the newest."""

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        return read_checkpoint(path, mmap=True)

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None or not _is_local_file_protocol(path):
            super().save_checkpoint(checkpoint, path, storage_options)  # its TypeError; fsspec for remote URLs
            return
        stream_save(checkpoint, path)


class StepCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` for step files: see the module docstring. ``every_n_steps`` 0: no periodic saves;
    ``save_final``: save the last step when training ends (unless it was just saved)."""

    def __init__(self, dirpath: Path, every_n_steps: int, keep: int, save_final: bool):
        super().__init__(dirpath=dirpath, filename="step{step:07d}", auto_insert_metric_name=False,
                         every_n_train_steps=every_n_steps, every_n_epochs=0, save_top_k=keep, monitor="step",
                         mode="max", save_last="link",  # last.ckpt links the newest step file: no second copy
                         enable_version_counter=False)  # same name = same step of the same run: replace it
        self.save_final = save_final

    @property
    def state_key(self) -> str:
        # the key ModelCheckpoint's state had in earlier checkpoints: their top-k list still resumes
        return super().state_key.replace(type(self).__qualname__, ModelCheckpoint.__qualname__, 1)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        if trainer.ckpt_path is not None:  # resumed: that file is this step's checkpoint
            self._last_global_step_saved = trainer.global_step

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.save_final or self._should_skip_saving_checkpoint(trainer) or trainer.global_step == 0:
            return
        candidates = self._monitor_candidates(trainer)
        self._save_topk_checkpoint(trainer, candidates)
        self._save_last_checkpoint(trainer, candidates)
