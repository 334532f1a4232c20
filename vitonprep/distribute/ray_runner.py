"""Shard tasks on a Ray cluster: the same tasks, shard writer and completion marker as the local runner.

The driver skips shards whose stats file exists, keeps at most one task in flight per shard worker (``-j``), and
retries a shard that failed (an exception, or a worker process or node that died) up to ``max_shard_retry``
times. A shard whose retries run out comes back with ``ShardResult.error`` set; the run goes on and a rerun of the
same command picks it up.

`RayDistributor` is the engine's distributor (`vitonprep.engine`): the ledger, the retry budget and the worker-side
set-up (`vitonprep.engine.run_task`) are the local runner's. Shards are plain Ray tasks, not tasks of long-lived
actors: an actor is bound to one process, so when a node is lost its replacement needs a CPU that the surviving
workers already hold, and the shard queued on it waits for ever (issue 15, item 10). A task runs wherever a CPU
is free. Each worker process still builds its per-process state (a pipeline and its models) once, on its first
shard, and keeps it for the next ones (`_shard_task`).
While shards wait, the driver watches the cluster: when no live node has a CPU for a shard, or the head (GCS)
stops answering, for longer than a grace period, it stops and returns every shard not made as an error, so the
caller can list them instead of waiting for ever or dying with Ray's own message.
"""

from __future__ import annotations

import logging
import socket
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from vitonprep.engine import (
    ProgressCallback,
    RetryBudget,
    ShardLedger,
    ShardTask,
    WorkerSetupError,
    WorkFactory,
    run_task,
)
from vitonprep.errors import ConfigError
from vitonprep.runner import worker_init
from vitonprep.shards import ShardResult

logger = logging.getLogger(__name__)

RAY_MISSING = "--distributor ray needs Ray, which is not installed: pip install 'vitonprep[ray]'"

#: how often the driver looks at the cluster while no shard finishes (seconds)
POLL_SECONDS = 2.0
#: how often it takes per-sample progress ticks, when it has an ``on_poll``
TICK_SECONDS = 0.5


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(RAY_MISSING) from exc
    return ray


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None  # None: use the running ray.init() or start a local instance; "auto"; "HOST:PORT"
    workers: int | None = None  # shards in flight; None: as many as the cluster's CPUs hold after stage actors
    cpus_per_worker: float = 1.0
    max_shard_retry: int = 2  # extra attempts per shard after the first
    # Ray ends a driver that cannot reach the head for 60 s (gcs_rpc_server_reconnect_timeout_s) without a word;
    # giving up well before that leaves time to report the shards not made
    head_timeout_s: float = 15.0
    # a lost node may come back (restarted, or an autoscaler adding one): wait this long for a CPU, then stop
    capacity_timeout_s: float = 60.0


def connect(ray: Any, address: str | None) -> bool:
    """Join (or start) a Ray instance; True if this call started it, so the caller shuts it down again."""
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address, include_dashboard=False)
    except ConnectionError as exc:  # no cluster at that address: a refusal, not a traceback
        raise ConfigError(f"cannot join the Ray cluster at {address}: {_first_line(exc)}") from exc
    return True


def head_reachable(ray: Any, timeout: float = 2.0) -> bool:
    """Whether the head's GCS accepts a connection. A plain socket, because every Ray call that needs the GCS
    blocks (up to Ray's 60 s reconnection limit, after which Ray ends the process) while it is gone."""
    host, _, port = ray.get_runtime_context().gcs_address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
        return True
    except OSError:
        return False


def _shard_task(token: str, factory: WorkFactory, task: ShardTask) -> ShardResult:
    """One shard, as a Ray task (decorated with ``ray.remote`` at run time, so importing this needs no Ray); the
    worker process keeps OpenCV/BLAS single-threaded (one shard per CPU already uses the cores)."""
    return run_task(token, factory, task, init=worker_init)


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


class _Watch:
    """Decides when waiting is hopeless: the head unreachable, or the live nodes too small for the stage actors
    and one shard, for a grace period."""

    def __init__(self, ray: Any, options: RayOptions, reserved_cpus: float, reserved_gpus: float):
        self.ray, self.options = ray, options
        self.reserved_cpus, self.reserved_gpus = reserved_cpus, reserved_gpus
        self.head_lost_at: float | None = None
        self.no_cpu_at: float | None = None
        self.head_lost = False

    def verdict(self) -> str | None:
        """None while the shards may still run; else why they never will."""
        now = time.monotonic()
        if not head_reachable(self.ray):
            self.head_lost_at = self.head_lost_at or now
            if now - self.head_lost_at >= self.options.head_timeout_s:
                self.head_lost = True
                return f"the Ray head node was lost (no answer for {now - self.head_lost_at:.0f} s)"
            return None
        self.head_lost_at = None
        # totals (not free amounts) of the live nodes: busy workers free theirs, dead nodes never will; a stage
        # actor lost with its node is restarted by Ray only where its resources are
        have = self.ray.cluster_resources()
        cpus = have.get("CPU", 0.0) - self.reserved_cpus
        if cpus >= self.options.cpus_per_worker and have.get("GPU", 0.0) >= self.reserved_gpus:
            self.no_cpu_at = None
            return None
        self.no_cpu_at = self.no_cpu_at or now
        if now - self.no_cpu_at >= self.options.capacity_timeout_s:
            gpus = (f", {have.get('GPU', 0.0):g} of {self.reserved_gpus:g} GPUs for stage actors"
                    if self.reserved_gpus else "")
            return (f"the live Ray nodes cannot run it ({max(cpus, 0):g} CPUs for shard workers{gpus}, for "
                    f"{now - self.no_cpu_at:.0f} s)")
        return None


@dataclass(frozen=True)
class RayDistributor:
    """The `vitonprep.engine.Distributor` of a Ray cluster: every task not yet complete as a Ray task, at most
    ``options.workers`` in flight. Expects Ray to be connected (see `connect`); ``reserved_cpus``/``reserved_gpus``
    are what other actors of the job (stage actors) hold. After a lost head no Ray call may be made any more (each
    would block): check `head_reachable` first."""

    options: RayOptions = RayOptions()
    reserved_cpus: float = 0.0
    reserved_gpus: float = 0.0
    #: called after every wait, before finished shards are recorded (per-sample progress drains its ticks here)
    on_poll: Callable[[], None] | None = None

    def run(self, ledger: ShardLedger, factory: WorkFactory) -> None:
        ray, options = import_ray(), self.options
        todo: deque[ShardTask] = deque(ledger.todo)
        if not todo:
            return
        # Ray's own retries are off: a retry here is counted, bounded and logged like any other
        remote = ray.remote(_shard_task).options(num_cpus=options.cpus_per_worker, max_retries=0)
        nworkers = min(worker_count(ray, options, self.reserved_cpus), len(todo))
        token = uuid.uuid4().hex
        logger.info("%d shards to make on %d Ray shard workers", len(todo), nworkers)
        watch = _Watch(ray, options, self.reserved_cpus, self.reserved_gpus)
        budget = RetryBudget(options.max_shard_retry)
        pending: dict[Any, ShardTask] = {}
        while todo or pending:
            while todo and len(pending) < nworkers:
                task = todo.popleft()
                budget.charge(task)
                pending[remote.remote(token, factory, task)] = task
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_SECONDS if self.on_poll is None
                                else min(POLL_SECONDS, TICK_SECONDS))
            if self.on_poll is not None and (ready or not watch.head_lost_at):  # no Ray call while the head is away
                self.on_poll()
            if not ready:
                reason = watch.verdict()
                if reason is None:
                    continue
                # every shard not made fails with the reason; a rerun of the same command makes them
                logger.error("giving up on %d shards (rerun the same command to make them): %s",
                             len(pending) + len(todo), reason)
                if not watch.head_lost:
                    for ref in pending:
                        ray.cancel(ref, force=True)
                for task in [*pending.values(), *todo]:
                    ledger.finish(ShardResult(index=task.index, nsamples=0, error=reason))
                return
            for ref in ready:
                task = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:  # an exception inside the work
                    if isinstance(exc.cause, (WorkerSetupError, ConfigError)):  # every shard would fail the same way
                        for other in pending:
                            ray.cancel(other, force=True)
                        raise _stop(exc.cause) from exc
                    result = budget.failed(task, _first_line(exc))
                except ray.exceptions.RayError as exc:  # the process or its node died (killed, OOM, node lost)
                    logger.warning("shard %d: its worker or node was lost (%s)", task.index, type(exc).__name__)
                    result = budget.failed(task, _first_sentence(exc))
                if result is None:
                    todo.append(task)
                else:
                    ledger.finish(result)


def run_shard_tasks_ray(
    tasks: Sequence[ShardTask],
    factory: WorkFactory,
    options: RayOptions = RayOptions(),
    progress: ProgressCallback | None = None,
    reserved_cpus: float = 0.0,
    reserved_gpus: float = 0.0,
) -> list[ShardResult]:
    """`RayDistributor` on every task not yet complete (without a job's plan check and manifest); results in task
    order (errors as values). Expects Ray to be connected (see `connect`)."""
    ledger = ShardLedger(tasks, progress)
    RayDistributor(options, reserved_cpus, reserved_gpus).run(ledger, factory)
    return ledger.ordered()


def _stop(cause: BaseException) -> ConfigError:
    """The run's refusal for a shard worker's set-up failure or ConfigError (as the local runner raises it)."""
    if isinstance(cause, WorkerSetupError):
        return ConfigError(f"Ray shard workers could not start: {cause}")
    return ConfigError(str(cause))


def _first_line(exc: BaseException) -> str:
    """An exception raised in the work: its last line is the original exception's."""
    lines = [ln for ln in str(exc).splitlines() if ln.strip()]
    return f"{type(exc).__name__}: {lines[-1] if lines else ''}"


def _first_sentence(exc: BaseException) -> str:
    """Ray's own failures (node died, worker crashed) say what happened first, then a page of advice."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text.split('. ')[0].rstrip('.')}"
