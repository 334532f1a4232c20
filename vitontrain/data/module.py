"""The LightningDataModule: shard specs → :class:`ShardStream` → a resumable DataLoader.

Resume contract (what is exact): the loader reports ``(epoch, batches consumed)`` in Lightning checkpoints
(Lightning saves ``state_dict()`` of loaders that have one); on resume the same epoch stream is rebuilt from the seed
and the consumed batches are skipped before decoding. With the same shards, seed, batch size, world size and number
of workers, a resumed run sees exactly the batches an uninterrupted run would have seen. Changing any of those
between runs keeps training going but the stream is then a different one (logged as a warning).

DataLoader workers are persistent (started at the first pass, kept until the loader is shut down): the position of
each pass is written into the stream's shared-memory position before the pass starts, which the workers read.
"""

from __future__ import annotations

import glob
import json
import logging
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Iterator

import pytorch_lightning as pl
from torch.utils.data import DataLoader
from webdataset.shardlists import expand_urls

from vitontrain.data.augment import AugmentConfig
from vitontrain.data.quality import quality_state
from vitontrain.data.shards import decoded_samples
from vitontrain.data.stream import ShardStream, StreamConfig
from vitontrain.data.transforms import collate, to_model_sample

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataConfig(StreamConfig):
    """``shards``: folders of ``.tar`` files, single tars, globs, brace patterns (``out/{00000..00009}.tar``) or
    URLs (``pipe:``, ``https://``, ``s3://`` … via fsspec). ``epoch_samples: null`` takes the manifests' sample
    count, which includes samples ``pairs`` and ``skip_flagged`` filter out (set it explicitly for mixed shards)."""

    shards: tuple[str, ...] = ()
    num_workers: int = 2
    pin_memory: bool = False


def stream_config(cfg: DataConfig) -> StreamConfig:
    return StreamConfig(**{f.name: getattr(cfg, f.name) for f in fields(StreamConfig)})


def expand_shard_specs(specs: tuple[str, ...] | list[str]) -> list[str]:
    """Every spec → an ordered list of shard URLs; a local spec that matches nothing is an error naming it."""
    urls: list[str] = []
    for spec in specs:
        if "://" in spec or spec.startswith("pipe:"):
            urls.extend(expand_urls(spec))
            continue
        path = Path(spec)
        if path.is_dir():
            found = sorted(str(p) for p in path.glob("*.tar"))
        elif any(ch in spec for ch in "*?["):
            found = sorted(glob.glob(spec))
        elif "{" in spec:
            found = [u for u in expand_urls(spec)]
            missing = [u for u in found if not Path(u).is_file()]
            if missing:
                raise FileNotFoundError(f"shard spec {spec}: {len(missing)} files missing, e.g. {missing[0]}")
        elif path.is_file():
            found = [spec]
        else:
            raise FileNotFoundError(f"shard spec {spec}: no such file or folder")
        if not found:
            raise FileNotFoundError(f"shard spec {spec}: no .tar shards found")
        urls.extend(found)
    if not urls:
        raise FileNotFoundError("no shards given (data.shards is empty)")
    return urls


def count_samples(specs: tuple[str, ...] | list[str]) -> int | None:
    """Sum of ``manifest.json`` sample counts when every spec is a local vitonprep output folder, else None."""
    total = 0
    for spec in specs:
        manifest = Path(spec) / "manifest.json"
        if not manifest.is_file():
            return None
        try:
            n = json.loads(manifest.read_text(encoding="utf-8"))["vitonprep"]["nsamples"]
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{manifest}: not a vitonprep manifest with vitonprep.nsamples ({type(exc).__name__}: "
                             f"{exc}); set data.epoch_samples or rebuild the shards") from exc
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ValueError(f"{manifest}: vitonprep.nsamples is {n!r}, not a sample count; set data.epoch_samples "
                             f"or rebuild the shards")
        total += n
    return total


def one_line_worker_error(exc: ValueError) -> ValueError:
    """The exception a DataLoader worker raised, with its own message back.

    torch re-raises a worker's exception in the main process as ``type(exc)(whole formatted traceback)``; our
    data errors (damaged shard, contract, decode) are one-line messages meant for the user, the last line of that
    text. The worker's traceback stays reachable as the cause (``vitontrain --verbose``)."""
    text = str(exc)
    if "Original Traceback" not in text:
        return exc
    last = text.rstrip().splitlines()[-1]
    _, sep, message = last.partition(": ")
    try:
        return type(exc)(message if sep else last)
    except Exception:  # an exception type that takes other arguments: leave it as torch made it
        return exc


class ResumableLoader(DataLoader):
    """A DataLoader over a :class:`ShardStream` that knows its position (Lightning's stateful-loader protocol)."""

    def __init__(self, stream: ShardStream, num_workers: int, pin_memory: bool = False):
        # Workers live for the whole run; each pass's position reaches them through the stream's shared position,
        # and a worker that has finished an epoch reads the next one's shuffle buffer ahead (stream module doc).
        stream.read_ahead = num_workers > 0
        super().__init__(stream, batch_size=None, num_workers=num_workers, pin_memory=pin_memory,
                         persistent_workers=num_workers > 0)
        self._stream = stream
        self._next_epoch = 0
        self._epoch = 0
        self._consumed = 0
        self._pending: tuple[int, int] | None = None

    def __len__(self) -> int:
        return self._stream.batches_per_rank

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        if self._pending is not None:
            epoch, skip = self._pending
            self._pending = None
            if skip:
                logger.info("resuming the data stream at epoch %d after %d consumed batches", epoch, skip)
        else:
            epoch, skip = self._next_epoch, 0
        self._stream.set_position(epoch, skip)
        self._stream.set_rank()
        self._epoch, self._consumed, self._next_epoch = epoch, skip, epoch + 1
        try:
            for batch in super().__iter__():
                self._consumed += 1
                yield batch
        except ValueError as exc:
            clean = one_line_worker_error(exc)
            if clean is exc:
                raise
            raise clean from exc

    def state_dict(self) -> dict[str, Any]:
        cfg = self._stream.config
        epoch, consumed = self._pending if self._pending is not None else (self._epoch, self._consumed)
        return {"epoch": epoch, "consumed": consumed, "batches_per_rank": len(self),
                "seed": cfg.seed, "batch_size": cfg.batch_size, "num_workers": self.num_workers,
                "shards": len(self._stream.urls)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        now = self.state_dict()
        changed = [k for k in ("batches_per_rank", "seed", "batch_size", "num_workers", "shards") if state[k] != now[k]]
        if changed:
            logger.warning("data settings changed since the checkpoint (%s): the resumed stream is not the one an "
                           "uninterrupted run would have seen", ", ".join(changed))
        if state["consumed"] >= state["batches_per_rank"]:
            self._pending = (state["epoch"] + 1, 0)
        else:
            self._pending = (state["epoch"], state["consumed"])
        self._next_epoch = self._pending[0]


class ShardDataModule(pl.LightningDataModule):
    def __init__(self, config: DataConfig):
        super().__init__()
        self.config = config
        self.urls: list[str] = []
        self.batches_per_rank = 0

    def setup(self, stage: str | None = None) -> None:
        cfg = self.config
        self.urls = expand_shard_specs(cfg.shards)
        epoch_samples = cfg.epoch_samples or count_samples(cfg.shards)
        if not epoch_samples:
            raise ValueError("data.epoch_samples must be set when the shards are not local vitonprep folders "
                             "with a manifest.json")
        world = self.trainer.world_size if self.trainer is not None else 1
        workers = max(1, cfg.num_workers)
        # on every rank alike, before any collective: a (rank, worker) partition with no kept sample would raise on
        # its rank only mid-epoch while the other ranks wait (partitioned sampling; a no-op for resampled)
        ShardStream(self.urls, stream_config(cfg), 1).check_partitions(world, workers)
        batches = max(1, math.ceil(epoch_samples / (cfg.batch_size * world)))
        self.batches_per_rank = math.ceil(batches / workers) * workers  # every worker yields the same count
        logger.info("data: %d shards, %d samples/epoch, %d batches of %d per rank (world %d, %d workers)",
                    len(self.urls), epoch_samples, self.batches_per_rank, cfg.batch_size, world, workers)

    def train_dataloader(self) -> ResumableLoader:
        if not self.urls:
            self.setup("fit")
        stream = ShardStream(self.urls, stream_config(self.config), self.batches_per_rank)
        return ResumableLoader(stream, self.config.num_workers, self.config.pin_memory)

    def preview_batch(self, n: int, unpaired: bool = False) -> dict[str, Any]:
        """The first ``n`` samples in shard order, resized, not augmented — for sample grids. ``unpaired`` rolls the
        garments by one so each person gets the next sample's garment."""
        urls = self.urls or expand_shard_specs(self.config.shards)
        cfg = self.config
        samples = []
        for sample in decoded_samples(urls):
            meta = sample.get("meta") if isinstance(sample.get("meta"), dict) else {}
            if meta.get("pair") not in cfg.pairs or "cloth" not in sample:
                continue  # person-only samples have no garment; the grids show what training reads
            if cfg.skip_flagged and quality_state(meta)[0] == "flagged":
                continue
            samples.append(to_model_sample(sample, cfg.height, cfg.width))
            if len(samples) == n:
                break
        if not samples:
            raise ValueError(f"no samples in {urls[:3]}")
        if unpaired and len(samples) > 1:
            cloths = [(s["cloth"], s["cloth_mask"]) for s in samples]
            for i, s in enumerate(samples):
                s["cloth"], s["cloth_mask"] = cloths[(i + 1) % len(samples)]
        return collate(samples)


__all__ = ["AugmentConfig", "DataConfig", "ResumableLoader", "ShardDataModule", "expand_shard_specs"]
