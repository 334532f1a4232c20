"""Shard tasks on a Ray cluster: the same tasks, shard writer and completion marker as the local runner.

The driver skips shards whose stats file exists, keeps one task in flight per shard worker, and retries a shard
that failed (an exception, or a worker process that died) up to ``max_shard_retry`` times, replacing a dead
worker. A shard whose retries run out comes back with ``ShardResult.error`` set; the run goes on and a rerun of
the same command picks it up. Shard workers are long-lived actors: they build their per-process state (a
pipeline and its models) once, in ``__init__``, then take shard after shard.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from vitonprep.errors import ConfigError
from vitonprep.runner import ProgressCallback, ShardTask, _worker_init, skipped_result
from vitonprep.shards import ShardResult, completed_shards

logger = logging.getLogger(__name__)

RAY_MISSING = "--distributor ray needs Ray, which is not installed: pip install 'vitonprep[ray]'"

#: called once in each shard worker process; returns the function that makes one shard
WorkFactory = Callable[[], Callable[[ShardTask], ShardResult]]


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(RAY_MISSING) from exc
    return ray


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None  # None: use the running ray.init() or start a local instance; "auto"; "HOST:PORT"
    workers: int | None = None  # shard workers; None: as many as the cluster's CPUs hold after the stage actors
    cpus_per_worker: float = 1.0
    max_shard_retry: int = 2  # extra attempts per shard after the first


def connect(ray: Any, address: str | None) -> bool:
    """Join (or start) a Ray instance; True if this call started it, so the caller shuts it down again."""
    if ray.is_initialized():
        return False
    ray.init(address=address, include_dashboard=False)
    return True


class ShardWorker:
    """One worker process. Decorated with ``ray.remote`` at run time, so importing this module needs no Ray."""

    def __init__(self, factory: WorkFactory):
        _worker_init()  # one shard per CPU already uses the cores: keep OpenCV/BLAS single-threaded
        self._work = factory()

    def ready(self) -> bool:
        return True

    def run(self, task: ShardTask) -> ShardResult:
        return self._work(task)


def worker_count(ray: Any, options: RayOptions, reserved_cpus: float = 0.0) -> int:
    """Shard workers to start; refuses (instead of waiting forever) a request the cluster cannot place."""
    cpus = ray.cluster_resources().get("CPU", 0.0) - reserved_cpus
    fit = int(cpus // options.cpus_per_worker) if options.cpus_per_worker > 0 else 0
    if options.workers is None:
        if fit < 1:
            raise ConfigError(f"the Ray cluster has no CPU left for a shard worker ({reserved_cpus:g} CPUs go to "
                              f"stage actors of {cpus + reserved_cpus:g}); lower stages.*.resources")
        return fit
    if options.workers > fit:
        raise ConfigError(f"{options.workers} shard workers x {options.cpus_per_worker:g} CPU do not fit the Ray "
                          f"cluster ({cpus:g} CPUs free after {reserved_cpus:g} for stage actors)")
    return options.workers


def wait_ready(ray: Any, actors: Sequence[Any], what: str) -> None:
    """Wait until the actors have run ``__init__``; one that cannot start (missing weights, import error) stops
    the run here with its reason, instead of failing every shard."""
    try:
        ray.get([a.ready.remote() for a in actors])
    except ray.exceptions.RayActorError as exc:
        raise ConfigError(f"Ray {what} could not start: {_first_line(exc)}") from exc


def run_shard_tasks_ray(
    tasks: Sequence[ShardTask],
    factory: WorkFactory,
    options: RayOptions = RayOptions(),
    progress: ProgressCallback | None = None,
    reserved_cpus: float = 0.0,
) -> list[ShardResult]:
    """Run every task not yet complete on Ray shard workers; results in task order (errors as values).

    Expects Ray to be connected (see `connect`); ``reserved_cpus`` are the CPUs other actors of the job hold.
    """
    ray = import_ray()
    results: dict[int, ShardResult] = {}
    todo: deque[ShardTask] = deque()
    # one listing per destination instead of two existence checks per shard: cheaper on object stores
    finished = {str(d): set(completed_shards(d)) for d in {t.out_dir for t in tasks}}
    for task in tasks:
        if task.index in finished[str(task.out_dir)]:
            results[task.index] = skipped_result(task)
        else:
            todo.append(task)
    done, total = len(results), len(tasks)
    if results:
        logger.info("resuming: %d of %d shards already complete", done, total)
    for r in list(results.values()):
        if progress:
            progress(r, done, total)
    if not todo:
        return [results[t.index] for t in tasks]

    remote_worker = ray.remote(ShardWorker).options(num_cpus=options.cpus_per_worker)
    nworkers = min(worker_count(ray, options, reserved_cpus), len(todo))
    idle = [remote_worker.remote(factory) for _ in range(nworkers)]
    wait_ready(ray, idle, "shard workers")
    logger.info("%d shards to make on %d Ray shard workers", len(todo), nworkers)
    attempts: dict[int, int] = {}
    pending: dict[Any, tuple[Any, ShardTask]] = {}
    while todo or pending:
        while todo and idle:
            worker, task = idle.pop(), todo.popleft()
            pending[worker.run.remote(task)] = (worker, task)
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            worker, task = pending.pop(ref)
            try:
                result = ray.get(ref)
                idle.append(worker)
            except ray.exceptions.RayActorError as exc:  # the process died (killed, OOM, node lost): replace it
                logger.warning("shard %d: worker died (%s); starting a new one", task.index, type(exc).__name__)
                idle.append(remote_worker.remote(factory))
                result = _retry_or_fail(task, exc, attempts, options, todo)
            except ray.exceptions.RayError as exc:  # an exception inside the work; the worker is still sound
                idle.append(worker)
                result = _retry_or_fail(task, exc, attempts, options, todo)
            if result is None:
                continue
            results[task.index] = result
            done += 1
            if progress:
                progress(result, done, total)
    for worker in idle:
        ray.kill(worker)
    return [results[t.index] for t in tasks]


def _retry_or_fail(task: ShardTask, exc: Exception, attempts: dict[int, int], options: RayOptions,
                   todo: deque[ShardTask]) -> ShardResult | None:
    n = attempts[task.index] = attempts.get(task.index, 0) + 1
    if n <= options.max_shard_retry:
        logger.warning("shard %d failed (attempt %d of %d), retrying: %s", task.index, n,
                       options.max_shard_retry + 1, _first_line(exc))
        todo.append(task)
        return None
    logger.error("shard %d failed %d times, giving up (rerun to retry): %s", task.index, n, _first_line(exc))
    return ShardResult(index=task.index, nsamples=0, error=_first_line(exc))


def _first_line(exc: Exception) -> str:
    lines = [ln for ln in str(exc).splitlines() if ln.strip()]
    return f"{type(exc).__name__}: {lines[-1] if lines else ''}"
