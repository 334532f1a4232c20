"""The training sample stream: shards → samples → (shuffle) → decode → resize → augment → batches.

One :class:`ShardStream` object is copied into every DataLoader worker of every rank. Its output is a pure function
of ``(seed, epoch, rank, world size, worker, number of workers)``, which is what makes resume exact: a resumed run
rebuilds the same epoch stream and skips the batches already consumed (skipping happens before decoding, so it
costs reading the tar members, not decoding them).

Workers are persistent (started once, kept across epochs). They learn where each pass starts — ``(epoch, batches
consumed)`` — from a small shared-memory tensor the main process writes before it starts the pass
(:meth:`ShardStream.set_position`); a worker reads it when the DataLoader hands it the new pass. The shuffle
buffer's *contents* are not carried from one epoch into the next: that would make epoch ``e`` depend on every
earlier epoch, and a resume would have to re-read all of them. Instead a persistent worker that has finished its
share of epoch ``e`` fills epoch ``e + 1``'s buffer in a background thread (``read_ahead``; raw tar bytes, no
decoding) while the other workers finish and the trainer validates or saves; the buffer is the one epoch ``e + 1``
would have filled itself, so the stream is the same with or without it.

Two shard orders (``sampling``):

* ``resampled`` (default for training): each (rank, worker) draws shards with replacement from the full list, an
  endless stream cut to the epoch length — no coordination, any number of shards, ranks and workers; samples are not
  disjoint across ranks within an epoch (statistically balanced instead), as in webdataset's ``ResampledShards``.
* ``partitioned``: shards are split by rank, then by worker (``urls[rank::world][worker::workers]``), reshuffled per
  epoch and cycled; every rank reads a disjoint set of samples. Needs at least ``world × workers`` shards.

Samples are filtered before shuffling: ``pairs`` keeps the wanted pairings, and ``skip_flagged`` (default) skips the
samples the quality checks flagged (meta.json ``quality``, vitontrain/data/quality.py); each worker logs per epoch
how many it skipped of how many it read, and how many were never quality-checked (kept). A malformed quality field is
kept as unchecked, with a warning naming the sample. Both filters are pure functions of the sample, so resume stays
exact.

A damaged sample (decode error) is logged and skipped; a resume after such a skip replays one sample later than the
uninterrupted run would (the skip counts raw samples), the only case in which resume is not exact. A damaged shard
(truncated or unreadable tar) is not skipped: it stops training with :class:`ShardReadError` naming it. It means an
interrupted copy or a failing disk, so the dataset is not the one the manifest describes; skipping it would train on
a silently different stream whose position no checkpoint can reproduce. ``fit`` checks local shards' tar headers
before it starts (``check_local_shards``), so this normally happens at once, not hours into a run.

Reading uses webdataset's tar expander and key grouping. Local paths, ``pipe:`` and ``http(s)://`` go through
webdataset's ``gopen``; any other ``scheme://`` (s3, gs, memory, …) is opened with fsspec.
"""

from __future__ import annotations

import io
import itertools
import logging
import math
import random
import threading
from dataclasses import dataclass, field
from typing import Any, Iterator, Literal

import numpy as np
import torch
from PIL import Image
from torch.utils.data import IterableDataset, get_worker_info

from vitonprep import ConfigError
from vitonprep.codecs import DecodeError, decode_member, pixels
from vitontrain.data.augment import AugmentConfig, augment_sample
from vitontrain.data.quality import QualityTally, quality_state
from vitontrain.data.shards import ContractError, ShardReadError, check_sample, open_url, raw_samples
from vitontrain.data.transforms import collate, resize_sample, to_model_sample

logger = logging.getLogger(__name__)

#: shard members the model reads; the rest (parse maps, pose, renders) are never decoded in training
TRAINING_MEMBERS = ("image.jpg", "agn.jpg", "image_densepose.jpg", "cloth.jpg", "agn_mask.png", "cloth_mask.png",
                    "gt_cloth_warped_mask.png", "meta.json")
JPEG_MEMBERS = ("image.jpg", "agn.jpg", "image_densepose.jpg", "cloth.jpg")
#: the pairings training can read (person-only samples have no garment)
TRAINING_PAIRS = ("paired", "unpaired")
__all__ = ["TRAINING_PAIRS", "ShardReadError", "ShardStream", "StreamConfig", "decode_training_member", "open_url"]


@dataclass(frozen=True)
class StreamConfig:
    height: int = 512
    width: int = 384
    batch_size: int = 4
    sampling: Literal["resampled", "partitioned"] = "resampled"
    shuffle_buffer: int = 200          # samples held per worker for shuffling; 0 = shard order
    epoch_samples: int | None = None   # samples per epoch over all ranks; None = the manifest's count
    seed: int = 0
    jpeg_draft: bool = True            # decode JPEGs at the smallest DCT scale ≥ the training size (2-4× faster)
    # Training needs the person to wear the garment ("paired"); unpaired samples only for smoke runs on tiny data.
    pairs: tuple[str, ...] = ("paired",)
    # Samples the quality checks flagged (meta.json "quality") are skipped; unchecked ones are kept.
    skip_flagged: bool = True
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        if not self.pairs or not all(isinstance(p, str) and p in TRAINING_PAIRS for p in self.pairs):
            raise ConfigError(f"pairs must be a non-empty list of {', '.join(TRAINING_PAIRS)} (paired: the "
                              f"person wears the garment; unpaired: for smoke runs), got {list(self.pairs)}")
        if self.sampling not in ("resampled", "partitioned"):
            raise ValueError(f"sampling must be 'resampled' or 'partitioned', got {self.sampling!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


def _rank_and_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _worker() -> tuple[int, int]:
    info = get_worker_info()
    return (0, 1) if info is None else (info.id, info.num_workers)


def decode_training_member(member: str, data: bytes, size: tuple[int, int], draft: bool) -> Any:
    """Decode one member for training; JPEGs optionally in draft mode (DCT-domain downscaling by 1/2, 1/4, 1/8 to
    the smallest scale that still covers ``size`` = (height, width)); everything else by the contract's decoders."""
    if draft and member in JPEG_MEMBERS:
        try:
            img = Image.open(io.BytesIO(data))
            img.draft("RGB", (size[1], size[0]))
            img.load()
        except Exception as exc:  # PIL raises many types for broken data
            raise DecodeError(f"{member}: cannot decode image ({type(exc).__name__}: {exc})") from exc
        if img.mode != "RGB":
            raise DecodeError(f"{member}: expected an RGB image, found mode {img.mode}")
        return pixels(img)
    return decode_member(member, data)


class _ReadAhead:
    """The first ``size`` raw samples of a worker's next epoch, read by a background thread of that worker.

    The thread only calls ``next`` on the epoch's raw-sample generator; :meth:`take` joins it before the worker's
    own thread uses the generator again, so it is never used by two threads at once."""

    def __init__(self, key: tuple[int, int, int], source: Iterator[dict[str, Any]], size: int):
        self.key = key
        self._source = source
        self._size = size
        self._buffer: list[dict[str, Any]] = []
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="shard-read-ahead", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._buffer = list(itertools.islice(self._source, self._size))
        except BaseException as exc:  # a damaged shard: raised where the epoch would have met it
            self._error = exc

    def take(self) -> tuple[Iterator[dict[str, Any]], list[dict[str, Any]]]:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._source, self._buffer


class ShardStream(IterableDataset):
    """Batches for one epoch of one (rank, worker); see the module doc for the ordering contract.

    ``batches_per_rank`` is the epoch length in batches for each rank; each worker yields its share, interleaved by
    the DataLoader in worker order (batch ``j`` comes from worker ``j % workers``), which is how :meth:`set_position`
    maps "batches already consumed" onto per-worker skips. ``read_ahead``: a DataLoader worker that has finished its
    share fills the next epoch's shuffle buffer in the background (for persistent workers; see the module doc).
    """

    def __init__(self, urls: list[str], config: StreamConfig, batches_per_rank: int, read_ahead: bool = False):
        super().__init__()
        if not urls:
            raise ValueError("no shard URLs given")
        self.urls = list(urls)
        self.config = config
        self.batches_per_rank = batches_per_rank
        self.read_ahead = read_ahead
        # [epoch, batches consumed, rank, world size]; shared memory, so persistent workers (which keep the copy of
        # this object they started with) see what the main process writes before each pass. rank -1 = not set.
        self._position = torch.tensor([0, 0, -1, 1], dtype=torch.int64).share_memory_()
        self._ahead: _ReadAhead | None = None  # worker-local
        self._tallies: dict[tuple[int, int], QualityTally] = {}  # worker-local: (epoch, logical worker) -> counts

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_ahead"] = None  # a thread is not copied into another process
        state["_tallies"] = {}
        return state

    @property
    def epoch(self) -> int:
        return int(self._position[0])

    @property
    def skip_batches(self) -> int:
        return int(self._position[1])

    def set_position(self, epoch: int, skip_batches: int = 0) -> None:
        """Where the next pass starts; call in the main process before the pass (workers read it as it starts)."""
        self._position[0] = epoch
        self._position[1] = skip_batches

    def set_rank(self) -> None:
        """Record this process's rank and world size (call in the main process, before the pass)."""
        rank, world = _rank_and_world()
        self._position[2] = rank
        self._position[3] = world

    # ------------------------------------------------------------------------------------------------ shard order
    def _shard_order(self, epoch: int, rank: int, world: int, worker: int, workers: int) -> Iterator[str]:
        rng = random.Random(f"shards/{self.config.seed}/{epoch}/{rank}/{worker}")
        if self.config.sampling == "resampled":
            while True:
                yield rng.choice(self.urls)
        mine = self.urls[rank::world][worker::workers]
        if not mine:
            raise ValueError(f"partitioned sampling: {len(self.urls)} shards cannot feed {world} ranks × {workers} "
                             f"workers (rank {rank}, worker {worker} got none); use more shards, fewer workers, or "
                             f"sampling: resampled")
        while True:  # cycle this worker's own shards, reshuffled each pass, until the epoch length is reached
            order = list(mine)
            rng.shuffle(order)
            yield from order

    def _raw_samples(self, urls: Iterator[str]) -> Iterator[dict[str, Any]]:
        for url in urls:
            yield from raw_samples(url)  # a truncated or damaged tar raises ShardReadError naming it

    def _wanted(self, samples: Iterator[dict[str, Any]], n_shards: int, tally: QualityTally
                ) -> Iterator[dict[str, Any]]:
        """Keep samples whose ``meta.pair`` is in ``config.pairs`` and, with ``skip_flagged``, that the quality
        checks did not flag (counted in ``tally``); fail loudly if the shards hold none."""
        seen_shards: set[str] = set()
        kept, flagged = 0, ""  # flagged: the first flagged sample skipped, for the message
        for raw in samples:
            meta = decode_member("meta.json", raw["meta.json"]) if "meta.json" in raw else None
            pair = meta.get("pair") if isinstance(meta, dict) else None
            if pair in self.config.pairs:
                state, problem = quality_state(meta)
                tally.count(state)
                if state == "malformed":
                    logger.warning("sample %s of %s: %s; kept as never quality-checked (vitonprep validate names "
                                   "the problem)", raw["__key__"], raw["__url__"], problem)
                if state != "flagged" or not self.config.skip_flagged:
                    kept += 1
                    yield raw
                    continue
                flagged = flagged or f"{raw['__url__']}: sample {raw['__key__']}"
            if not kept:
                seen_shards.add(raw["__url__"])
                if len(seen_shards) >= n_shards:
                    raise ContractError(self._none_wanted(raw, pair, flagged, len(seen_shards)))

    def check_partitions(self, world: int, workers: int) -> None:
        """Partitioned sampling: ContractError unless every (rank, worker) partition holds a sample the filters keep
        (else that worker raises mid-epoch on its rank alone while the other ranks wait in a collective for ever).
        Every rank checks every partition, read up to its first kept sample: all ranks refuse alike, before training."""
        cfg = self.config
        if cfg.sampling != "partitioned":  # resampled: every worker reads every shard, _wanted refuses alike
            return
        for rank, worker in itertools.product(range(world), range(workers)):
            mine = self.urls[rank::world][worker::workers]
            if not mine:
                raise ValueError(f"partitioned sampling: {len(self.urls)} shards cannot feed {world} ranks × {workers} "
                                 f"workers (rank {rank}, worker {worker} got none); use more shards or resampled")
            if not any(self._kept(raw) for raw in self._raw_samples(iter(mine))):
                flagged = " that the quality checks did not flag (data.skip_flagged)" if cfg.skip_flagged else ""
                raise ContractError(f"partitioned sampling: rank {rank}, worker {worker} reads {len(mine)} shards "
                                    f"({mine[0]}, ...) and none holds a sample with pair in {list(cfg.pairs)}"
                                    f"{flagged}; use sampling: resampled, or other shards")

    def _kept(self, raw: dict[str, Any]) -> bool:
        """The filters of :meth:`_wanted`, without its counting."""
        meta = decode_member("meta.json", raw["meta.json"]) if "meta.json" in raw else None
        pair_ok = isinstance(meta, dict) and meta.get("pair") in self.config.pairs
        return pair_ok and not (self.config.skip_flagged and quality_state(meta)[0] == "flagged")

    def _none_wanted(self, raw: dict[str, Any], pair: Any, flagged: str, n_shards: int) -> str:
        where = f"{raw['__url__']}: sample {raw['__key__']}"
        if flagged:
            return (f"every sample with pair in {list(self.config.pairs)} in {n_shards} shards is flagged by the "
                    f"quality checks (e.g. {flagged}); look at them (vitonprep inspect, vitonprep quality) or set "
                    f"data.skip_flagged=false to train on them anyway")
        return (f"no sample with pair in {list(self.config.pairs)} in {n_shards} shards (e.g. {where} is {pair!r}). "
                f"Training needs paired samples (the person wears the garment); set data.pairs=[paired,unpaired] to "
                f"run on these anyway")

    def _epoch_source(self, epoch: int, rank: int, world: int, worker: int, workers: int
                      ) -> Iterator[dict[str, Any]]:
        """One (rank, logical worker)'s raw samples of one epoch, before shuffling; what the filters saw is
        counted in ``self._tallies[(epoch, worker)]``."""
        shards = self._shard_order(epoch, rank, world, worker, workers)
        mine = self.urls if self.config.sampling == "resampled" else self.urls[rank::world][worker::workers]
        tally = self._tallies[(epoch, worker)] = QualityTally()
        return self._wanted(self._raw_samples(shards), len(set(mine)), tally)

    def _shuffled(self, samples: Iterator[dict[str, Any]], rng: random.Random,
                  buffer: list[dict[str, Any]] | None = None) -> Iterator[dict[str, Any]]:
        """webdataset-style buffer shuffle; ``buffer``: the first samples of ``samples``, already read."""
        size = self.config.shuffle_buffer
        if size <= 1:
            yield from samples
            return
        buffer = [] if buffer is None else buffer
        for sample in samples:
            if len(buffer) < size:
                buffer.append(sample)
                continue
            i = rng.randrange(len(buffer))
            buffer[i], sample = sample, buffer[i]
            yield sample
        rng.shuffle(buffer)
        yield from buffer

    # ------------------------------------------------------------------------------------------------ per sample
    def _decode(self, raw: dict[str, Any]) -> dict[str, Any]:
        size = (self.config.height, self.config.width)
        sample: dict[str, Any] = {"__key__": raw["__key__"]}
        for member in TRAINING_MEMBERS:
            if member in raw:
                value = decode_training_member(member, raw[member], size, self.config.jpeg_draft)
                sample[member.rsplit(".", 1)[0]] = value
        return sample

    def _check(self, raw: dict[str, Any], url: str) -> None:
        """The full shard-contract check (every member decoded at full size) on a worker's first sample."""
        missing = [m for m in TRAINING_MEMBERS if m not in raw and m != "gt_cloth_warped_mask.png"]
        if missing:
            raise ContractError(f"{url}: sample {raw['__key__']} lacks {missing}; is this a vitonprep shard? "
                                f"(`vitonprep validate` tells what is wrong)")
        full: dict[str, Any] = {"__key__": raw["__key__"]}
        for member, data in raw.items():
            if member.startswith("__"):
                continue
            try:
                value = decode_member(member, data)
            except DecodeError as exc:
                raise ContractError(f"{url}: sample {raw['__key__']}: {exc}") from exc
            if value is not None:
                full[member.rsplit(".", 1)[0]] = value
        try:
            check_sample(full)
        except ContractError as exc:
            raise ContractError(f"{url}: {exc}") from exc

    def _start_read_ahead(self, epoch: int, rank: int, world: int, worker: int, workers: int) -> None:
        if not self.read_ahead or self.config.shuffle_buffer <= 1 or get_worker_info() is None:
            return  # in the main process a thread could hold a lock across a later fork
        source = self._epoch_source(epoch, rank, world, worker, workers)
        self._ahead = _ReadAhead((epoch, worker, workers), source, self.config.shuffle_buffer)

    def _log_tally(self, epoch: int, rank: int, worker: int) -> None:
        tally = self._tallies.pop((epoch, worker), None)
        if tally is not None:
            logger.info("epoch %d, rank %d, worker %d: %s", epoch, rank, worker, tally.line(self.config.skip_flagged))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        cfg = self.config
        epoch, skip_batches, rank, world = (int(v) for v in self._position.tolist())
        if rank < 0:
            # set by the loader in the main process (set_rank): DataLoader workers started with spawn/forkserver
            # have no process group of their own and would all read rank 0's stream
            rank, world = _rank_and_world()
        physical, workers = _worker()
        # The DataLoader always starts its round robin at worker 0; after consuming `skip_batches` the next batch
        # belongs to logical worker skip % workers, so physical workers take the logical roles rotated by that.
        worker = (physical + skip_batches) % workers
        per_worker = math.ceil(self.batches_per_rank / workers)
        # batches this logical worker already delivered in the interrupted pass
        skip = max(0, math.ceil((skip_batches - worker) / workers))
        rng = random.Random(f"shuffle/{cfg.seed}/{epoch}/{rank}/{worker}")
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead.key == (epoch, worker, workers):
            source, buffer = ahead.take()
        else:  # the first pass, a resume, or a position the read-ahead did not guess: read the buffer now
            source, buffer = self._epoch_source(epoch, rank, world, worker, workers), []
        samples = self._shuffled(source, rng, buffer)
        batch: list[dict[str, Any]] = []
        produced = 0
        for index, raw in enumerate(samples):
            if produced >= per_worker:
                self._log_tally(epoch, rank, worker)
                # the next pass starts at batch 0, where logical and physical worker ids agree
                self._start_read_ahead(epoch + 1, rank, world, physical, workers)
                return
            if index == 0:  # the epoch's first sample of every worker is checked against the contract, loudly
                self._check(raw, raw["__url__"])  # (the same sample whether or not this pass resumes)
            if index < skip * cfg.batch_size:
                if (index + 1) % cfg.batch_size == 0:
                    produced += 1
                continue
            try:
                decoded = self._decode(raw)
            except DecodeError as exc:  # one damaged sample must not stop a training run: say so and go on
                logger.warning("skipping sample %s of %s: %s", raw["__key__"], raw["__url__"], exc)
                continue
            resized = resize_sample(decoded, cfg.height, cfg.width)
            aug_rng = np.random.default_rng([cfg.seed, epoch, rank, worker, index])
            # uint8 across the worker→main process boundary; the system normalises after device transfer
            batch.append(to_model_sample(augment_sample(resized, cfg.augment, aug_rng), as_uint8=True))
            if len(batch) == cfg.batch_size:
                yield collate(batch)
                batch = []
                produced += 1
