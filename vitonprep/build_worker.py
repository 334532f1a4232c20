"""The build's shard work, run in worker processes (local or Ray): the pipeline on every sample of one shard,
failures recorded, then the atomic shard write.

The pipeline runs through `Pipeline.run` (or its batched form), never a copy of its stage loop. A stage that runs
elsewhere (a Ray stage actor, ``resources.actors > 0``) is replaced in the pipeline by an `OffloadedStage`, whose
batched call sends its batch to that process; a rebuild from shards replaces the load stage by
`vitonprep.rebuild.StoredPhotoLoad` and carries the input over after encoding (`vitonprep.rebuild.rebuild_stages`).
The quality stage's counts of a shard go into its stats file (``quality``). After each sample (each batch), the
maker reports how many samples of its task are done (``on_sample``; `SampleTicks` carries that to the driver).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from vitonprep.config import PipelineConfig
from vitonprep.engine import ShardTask, chunk
from vitonprep.errors import SampleError
from vitonprep.raw import RawItem
from vitonprep.rebuild import ShardItem, StoredPhotoLoad, rebuild_stages
from vitonprep.shards import Failure, Sample, ShardResult, write_shard
from vitonprep.stages import Pipeline, QualityCounts, QualityStage, SampleContext, Stage

logger = logging.getLogger(__name__)

#: runs one stage on a batch of contexts somewhere else (a Ray actor): (call number, contexts) -> (contexts or
#: SampleErrors in order, seconds spent per stage there)
RemoteStage = Callable[[int, list[SampleContext]], tuple[list[Any], dict[str, float]]]


@dataclass(frozen=True)
class Offload:
    """A stage that runs outside the shard worker, ``batch_size`` samples per call."""

    call: RemoteStage
    batch_size: int = 1


class OffloadedStage(Stage):
    """Stands in the pipeline for a stage whose model runs in another process: its batched call goes there in
    batches of ``batch_size`` (the remote side runs the real stage's `Stage.run_batch`, one back-end call per
    batch). Calls are numbered from this process's id, so the shard workers start on different actors."""

    def __init__(self, stage: Stage, offload: Offload):
        self.name, self.reads, self.writes = stage.name, stage.reads, stage.writes
        self.offload = offload
        self.calls = itertools.count(os.getpid())

    def setup(self) -> None:
        """Nothing to load here: the model lives in the remote process."""

    def close(self) -> None:
        """Nothing to release here."""

    def __call__(self, ctx: SampleContext) -> None:
        out = self.run_batch([ctx])[0]
        if isinstance(out, SampleError):
            raise out

    def run_batch(self, ctxs: list[SampleContext]) -> list[SampleContext | SampleError]:
        out: list[SampleContext | SampleError] = []
        for part in chunk(ctxs, self.offload.batch_size):
            made, _ = self.offload.call(next(self.calls), list(part))
            for ctx, result in zip(part, made, strict=True):
                if isinstance(result, SampleError):
                    out.append(result)
                else:  # the remote side filled in a copy: this context is the one the pipeline holds
                    vars(ctx).update(vars(result))
                    out.append(ctx)
        return out


@dataclass(frozen=True)
class SampleTicks:
    """Per-sample progress from a worker process: puts (shard index, samples of the task done) on ``queue``, a
    multiprocessing manager's queue (its proxy pickles to the workers; the driver drains it)."""

    queue: Any

    def __call__(self, index: int, done: int) -> None:
        self.queue.put((index, done))


class ShardMaker:
    """Makes one output shard from a task. The pipeline is built and its models loaded once (per worker process);
    stages named in ``offload`` run elsewhere, ``batch_size`` samples at a time. ``on_sample(index, done)``, when
    set, is told after each sample (or batch) how many samples of the task are done."""

    on_sample: Callable[[int, int], None] | None = None

    def __init__(self, cfg: PipelineConfig, offload: Mapping[str, Offload] | None = None):
        self.cfg = cfg
        offload = dict(offload or {})
        stages = [OffloadedStage(s, offload[s.name]) if s.name in offload else s
                  for s in Pipeline.from_config(cfg).stages]
        self.pipe = Pipeline(cfg, stages)
        self.pipe.setup()  # models are loaded once per worker process, and only for stages run here
        self.loader = StoredPhotoLoad(cfg)
        self.rebuild = Pipeline(cfg, rebuild_stages(self.loader, stages), ready=True)  # the same set-up stages
        self.rebuild.check()
        self.quality = next((s for s in stages if isinstance(s, QualityStage)), None)
        self.batch = max([o.batch_size for o in offload.values()], default=1)

    def __call__(self, task: ShardTask) -> ShardResult:
        return self.write(task, *self.make(task))

    @staticmethod
    def write(task: ShardTask, samples: list[Sample], failures: list[Failure], timings: dict[str, float],
              quality: QualityCounts | None = None) -> ShardResult:
        """The shard of ``task``, written atomically, with the seconds per stage and (when the quality stage ran)
        its counts in its stats file."""
        extra: dict[str, Any] = {"stage_seconds": {k: round(v, 4) for k, v in timings.items()}}
        if quality is not None:
            extra["quality"] = quality.to_dict()
        return write_shard(task.out_dir, task.index, samples, failures, extra_stats=extra)

    def make(self, task: ShardTask) -> tuple[list[Sample], list[Failure], dict[str, float], QualityCounts | None]:
        """The samples of ``task`` and the failures, in item order, with seconds per stage and the quality
        stage's counts (None without it); nothing written."""
        samples: list[Sample] = []
        failures: list[Failure] = []
        timings: dict[str, float] = {}
        rebuild = bool(task.items) and isinstance(task.items[0], ShardItem)
        if rebuild:
            self.loader.start(task.items)
        pipe = self.rebuild if rebuild else self.pipe
        if self.quality is not None:
            self.quality.take_counts()  # a task that died half-way in this process left its counts behind
        try:
            for part in chunk(list(task.items), self.batch):
                for item, out in zip(part, run_items(pipe, part, timings), strict=True):
                    if isinstance(out, SampleError):
                        failures.append(_failure(out, item))
                    else:
                        samples.append(out)
                if self.on_sample is not None:
                    self._tick(task.index, len(samples) + len(failures))
        finally:
            self.loader.finish()
        return samples, failures, timings, (self.quality.take_counts() if self.quality is not None else None)

    def _tick(self, index: int, done: int) -> None:
        """Progress is a courtesy: a lost tick (the driver's queue manager gone, a closed pipe) must not fail the
        shard, whose samples are already made."""
        try:
            self.on_sample(index, done)  # type: ignore[misc]  # checked by the caller
        except Exception:  # noqa: BLE001 - whatever the transport raises, the work goes on
            logger.debug("progress tick for task %d lost", index, exc_info=True)


def run_items(pipe: Pipeline, items: Sequence[Any], timings: dict[str, float]) -> list[Sample | SampleError]:
    """The pipeline on ``items``: each one's sample, or the SampleError it raised, in order. One item is exactly
    `Pipeline.run`; several are `Pipeline.run_batch` (each stage sees the whole batch)."""
    if len(items) != 1:
        return pipe.run_batch(items, timings)
    try:
        return [pipe.run(items[0], timings)]
    except SampleError as exc:
        return [exc]


def _failure(exc: SampleError, item: Any) -> Failure:
    source = exc.source or (item.person if isinstance(item, RawItem) else f"{item.source}:{item.key}")
    logger.warning("%s failed at %s: %s", item.key, exc.stage, exc.reason)
    return Failure(source=source, stage=exc.stage, reason=exc.reason, key=item.key)


_MAKERS: dict[str, ShardMaker] = {}  # one set-up pipeline per worker process and config (no offloaded stage)


def shard_maker(cfg: PipelineConfig) -> ShardMaker:
    key = json.dumps(cfg.to_dict(), sort_keys=True, default=str)
    maker = _MAKERS.get(key)
    if maker is None:
        maker = _MAKERS[key] = ShardMaker(cfg)
    return maker


@dataclass(frozen=True)
class BuildWork:
    """The build's `vitonprep.engine.WorkFactory`: called once in each worker process, returns its `ShardMaker`
    (kept across runs of the same config in that process when no stage is offloaded)."""

    cfg: PipelineConfig
    offload: Mapping[str, Offload] = field(default_factory=dict)
    #: per-sample progress (`ShardMaker.on_sample`): a `SampleTicks`, or a plain callable for a run in this process
    ticks: Callable[[int, int], None] | None = None

    def __call__(self) -> ShardMaker:
        maker = ShardMaker(self.cfg, self.offload) if self.offload else shard_maker(self.cfg)
        maker.on_sample = self.ticks  # the kept maker of an earlier run in this process reports to this run
        return maker


def build_shard(cfg: PipelineConfig, task: ShardTask) -> ShardResult:
    """One shard with this process's pipeline for ``cfg``."""
    return shard_maker(cfg)(task)
