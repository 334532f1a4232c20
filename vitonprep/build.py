"""`vitonprep build IN OUT`: raw photos (or existing shards) -> validated shards, with the stages of a pipeline YAML.

This module is the driver: it plans the job and hands it to the shard-job engine (`vitonprep.engine.run_job`).
Each output shard is one task (its samples are planned up front and sorted); the work that makes a shard runs in
worker processes (`vitonprep.build_worker`), on this machine (`vitonprep.runner.LocalDistributor`) or on a Ray
cluster (`vitonprep.distribute.ray_build`, ``distributor="ray"``). A rerun skips shards whose stats file exists,
so a killed build loses at most its in-flight shards and never duplicates a sample. OUT may be any fsspec URL.

A raw build's shards hold the pipeline's ``samples_per_shard`` samples, fewer when that would leave workers idle
(`shard_size`: 12 pairs on 2 workers make 2 shards of 6, not 1 of 12); the size used is recorded in ``_plan.json``
and a rerun into the same folder takes it from there, whatever its ``-j``, so a resume stays exact. Progress comes
per shard (``progress``) and per sample (``sample_progress``: workers report each sample, locally through a queue
of a manager process, on Ray through a tick-sink actor), counting what this run made apart from what earlier runs
left.

IN is a raw folder (``vitonprep.raw``) or a folder of vitonprep shards (`vitonprep.rebuild`): then output shard i
is input shard i with the pipeline's stages re-run on its person and garment photos; members the pipeline does not
make are carried over, and the stored photos are kept byte for byte.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.managers import SyncManager
from pathlib import Path
from typing import Any, Callable, Iterator

from vitonprep.build_worker import BuildWork, SampleTicks
from vitonprep.config import PipelineConfig
from vitonprep.distribute.ray_build import RayBuildDistributor
from vitonprep.distribute.ray_runner import RayOptions, import_ray
from vitonprep.engine import Distributor, ProgressCallback, ShardJob, ShardTask, chunk, run_job
from vitonprep.engine.job import PLAN_NAME
from vitonprep.errors import ConfigError
from vitonprep.raw import plan_raw
from vitonprep.rebuild import is_shard_dataset, plan_shards
from vitonprep.runner import LocalDistributor, die_with_parent, pool_context, start_pool_server
from vitonprep.shards import Failure, Location, ShardResult, is_url, read_json, read_stats
from vitonprep.stages import Pipeline, QualityCounts

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildOptions:
    #: local: processes (None = 1; the CLI's default is `default_workers`); ray: shard workers (None = as many as
    #: the cluster's CPUs hold)
    workers: int | None = None
    pairs_file: Path | None = None
    strict: bool = False
    distributor: str = "local"  # "local" | "ray"
    ray_address: str | None = None  # None: the running ray.init() or a new local instance; "auto"; "HOST:PORT"
    max_shard_retry: int = 2  # extra attempts for a shard whose task failed or whose worker died


@dataclass
class BuildReport:
    nsamples: int
    nplanned: int
    nshards: int
    skipped_shards: int
    failures: list[Failure]
    seconds: float
    stage_seconds: dict[str, float] = field(default_factory=dict)
    unused_garments: tuple[str, ...] = ()
    failed_shards: dict[int, str] = field(default_factory=dict)  # shard -> error, after the retries ran out
    #: the quality stage's counts over every shard of OUT (resumed ones too, from their stats files); None when
    #: the pipeline has no quality stage (``quality.enabled: false``)
    quality: QualityCounts | None = None
    #: samples per shard of this build (raw inputs: `shard_size`, or the size recorded by the run it resumes)
    samples_per_shard: int = 0
    #: samples made by this run (``nsamples`` counts the resumed shards' too): what a rate should divide
    nmade: int = 0


#: memory one local worker may need at its peak (models, buffers, a 48 MP photo: about 0.7 GB measured), for the
#: default worker count
WORKER_PEAK_BYTES = 1 << 30
#: per-sample progress: (samples done, samples planned, samples done by this run - resumed shards are not)
SampleProgress = Callable[[int, int, int], None]


def default_workers() -> int:
    """Local workers when none are asked for: the cores this process may run on (its CPU affinity: a container's
    or taskset's share, not the machine's count), at most one per `WORKER_PEAK_BYTES` of physical memory."""
    counter = getattr(os, "process_cpu_count", None)  # Python 3.13
    try:
        cores = counter() if counter is not None else len(os.sched_getaffinity(0))
    except AttributeError:  # no sched_getaffinity (macOS)
        cores = os.cpu_count()
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // WORKER_PEAK_BYTES
    except (ValueError, OSError, AttributeError):  # no sysconf names (Windows)
        memory = cores
    return max(1, min(cores or 1, memory or 1))


def shard_size(nitems: int, per_shard: int, workers: int) -> int:
    """``per_shard``, lowered so that ``nitems`` make at least one shard per worker (a shard is one worker's task:
    with fewer shards than workers, the others idle)."""
    if workers <= 1 or nitems <= 0:
        return per_shard
    return max(1, min(per_shard, -(-nitems // workers)))


def _recorded_size(out: Location, plan: dict[str, Any]) -> int | None:
    """The shard size a previous run into ``out`` recorded in a plan otherwise equal to ``plan``; None if none."""
    try:
        previous = read_json(out, PLAN_NAME)
    except (OSError, ValueError):  # unreadable: check_plan reports the folder as it always has
        return None
    if not isinstance(previous, dict) or not isinstance(previous.get("samples_per_shard"), int):
        return None
    rest = {k: v for k, v in previous.items() if k != "samples_per_shard"}
    return previous["samples_per_shard"] if rest == json.loads(json.dumps(plan, default=str)) else None


class _SampleCounter:
    """Per-sample progress from shard results and the workers' ticks (shard index, samples of its current attempt
    done): a finished shard counts its samples and failures, a running one its ticks (a retried shard starts its
    count again). Ticks arrive on the queue thread, results on the caller's: one lock, and a tick drained after
    its shard's result is dropped."""

    def __init__(self, total: int, callback: SampleProgress):
        self.total, self.callback = total, callback
        self.resumed = self.made = 0
        self.running: dict[int, int] = {}
        self.finished: set[int] = set()
        self.lock = threading.Lock()

    def tick(self, index: int, done: int) -> None:
        with self.lock:
            if index not in self.finished:
                self.running[index] = done
                self._report()

    def shard(self, result: ShardResult) -> None:
        with self.lock:
            self.finished.add(result.index)
            self.running.pop(result.index, None)
            n = result.nsamples + len(result.failures)
            if result.skipped:
                self.resumed += n
            elif not result.error:
                self.made += n
            self._report()

    def _report(self) -> None:
        this_run = self.made + sum(self.running.values())
        self.callback(min(self.total, self.resumed + this_run), self.total, this_run)


@contextmanager
def _sample_ticks(counter: _SampleCounter | None, pooled: bool) -> Iterator[Any]:
    """What the workers call per sample: ``counter.tick`` in this process, a manager queue drained here by a thread
    for a pool's worker processes (its proxy pickles to them), or None without a counter."""
    if counter is None or not pooled:
        yield None if counter is None else counter.tick
        return
    manager = SyncManager(ctx=pool_context())
    manager.start(die_with_parent)  # a child of the pool's server, it dies with it, as the workers do
    queue = manager.Queue()

    def drain() -> None:
        for item in iter(queue.get, None):
            counter.tick(*item)

    thread = threading.Thread(target=drain, name="vitonprep-sample-progress", daemon=True)
    thread.start()
    try:
        yield SampleTicks(queue)
    finally:
        queue.put(None)
        thread.join(timeout=10)
        manager.shutdown()


def _plan_fingerprint(cfg: PipelineConfig) -> dict[str, Any]:
    """The pipeline as it shapes the output: stage resources say where stages run and ``weights_dir`` where weight
    files are found, not what they make, so a build may resume on another cluster layout or machine."""
    d = json.loads(json.dumps(cfg.to_dict(), default=str))
    d.pop("weights_dir", None)
    for choice in d["stages"].values():
        choice.pop("resources", None)
    return d


def _distributor(cfg: PipelineConfig, options: BuildOptions) -> Distributor:
    if options.distributor == "ray":
        return RayBuildDistributor(cfg, RayOptions(address=options.ray_address, workers=options.workers,
                                                   max_shard_retry=options.max_shard_retry))
    return LocalDistributor(options.workers or 1, options.max_shard_retry)


def build_dataset(cfg: PipelineConfig, raw: Location, out: Location, options: BuildOptions = BuildOptions(),
                  progress: ProgressCallback | None = None,
                  sample_progress: SampleProgress | None = None) -> BuildReport:
    """Library twin of `vitonprep build`. Raises ConfigError before any image is touched if the pipeline, the
    input or the distributor is wrong. ``progress`` is called per finished shard; ``sample_progress`` per sample
    (locally through a manager queue, on Ray through a tick-sink actor)."""
    t0 = time.perf_counter()
    if options.distributor not in ("local", "ray"):
        raise ConfigError(f"distributor: {options.distributor!r} is not one of local, ray")
    if options.distributor == "ray":
        import_ray()  # fail now, with the install hint, rather than after planning
    if options.distributor == "local" and (options.workers or 1) > 1:
        start_pool_server()  # the workers' imports run while this process plans
    Pipeline.from_config(cfg)  # resolves every back-end name and parameter now, not in a worker
    plan: dict[str, Any] = {"pipeline": _plan_fingerprint(cfg)}
    if is_shard_dataset(raw):
        shard_plan = plan_shards(raw)
        tasks = [ShardTask(idx, out, items) for idx, items in shard_plan]
        keys = [i.key for _, items in shard_plan for i in items]
        info = {"source_dataset": "vitonprep shards", "input": str(raw), "layout": "shards"}
        unused: tuple[str, ...] = ()
        skipped: tuple[Failure, ...] = ()
        plan.update(items=keys, input_shards=str(raw))
    else:
        if is_url(raw):
            raise ConfigError(f"{raw}: remote inputs must be vitonprep shards (no finished shard found there)")
        raw_plan = plan_raw(Path(raw), options.pairs_file)
        keys = [i.key for i in raw_plan.items]
        plan.update(items=keys)
        size = _recorded_size(out, plan) or shard_size(len(keys), cfg.samples_per_shard, options.workers or 1)
        plan.update(samples_per_shard=size)
        tasks = [ShardTask(i, out, items) for i, items in enumerate(chunk(list(raw_plan.items), size))]
        info = {"source_dataset": "raw photos", "input": str(raw), "layout": raw_plan.layout,
                "samples_per_shard": size}
        unused, skipped = raw_plan.unused_garments, raw_plan.skipped
    manifest = {**info, "pipeline": cfg.to_dict(), "unused_garments": list(unused),
                "skipped_inputs": [f.to_dict() for f in skipped]}
    counter = _SampleCounter(len(keys), sample_progress) if sample_progress is not None else None

    def on_shard(result: ShardResult, done: int, total: int) -> None:
        if progress is not None:
            progress(result, done, total)
        if counter is not None:
            counter.shard(result)

    pooled = options.distributor == "local" and (options.workers or 1) > 1
    with _sample_ticks(counter, pooled) as ticks:
        job = ShardJob(out=out, name=cfg.name, tasks=tuple(tasks), plan=plan, work=BuildWork(cfg, ticks=ticks),
                       manifest_info=lambda results: manifest, extra_json={"_config.json": cfg.to_dict()},
                       mismatch="holds shards of a different build (other inputs or pipeline); use an empty "
                                "output folder or --overwrite")
        results = run_job(job, _distributor(cfg, options), on_shard)
    stage_seconds: dict[str, float] = {}
    quality = QualityCounts() if cfg.quality.enabled else None
    for r in results:
        if not r.error:
            stats = read_stats(out, r.index)
            for k, v in stats.get("stage_seconds", {}).items():
                stage_seconds[k] = stage_seconds.get(k, 0.0) + v
            counts = QualityCounts.from_dict(stats.get("quality"))
            if quality is not None and counts is not None:
                quality.merge(counts)
    return BuildReport(
        nsamples=sum(r.nsamples for r in results), nplanned=len(keys), nshards=len(results),
        skipped_shards=sum(r.skipped for r in results),
        failures=list(skipped) + [f for r in results for f in r.failures],
        seconds=time.perf_counter() - t0, stage_seconds=stage_seconds, unused_garments=unused,
        failed_shards={r.index: r.error for r in results if r.error}, quality=quality,
        samples_per_shard=max((len(t.items) for t in tasks), default=0),
        nmade=sum(r.nsamples for r in results if not r.skipped),
    )
