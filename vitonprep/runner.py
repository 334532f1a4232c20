"""Local processes: the `LocalDistributor` of the shard-job engine (`vitonprep.engine`), and the worker pool it
and validation share (forkserver start, one compute thread per worker, workers that die with the build).

Each task makes the samples of one output shard and writes it atomically (`vitonprep.shards.write_shard`).
Finished shards (stats file present) are skipped by the engine's ledger, so a rerun after a crash resumes where it
stopped; a shard is never written twice into the output. ``ShardTask``, ``chunk`` and ``ProgressCallback`` are
re-exported from `vitonprep.engine` for the modules and tests that import them from here.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing as mp
import os
import signal
import sys
import uuid
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import forkserver
from typing import Any, Callable, Iterator, Sequence

from threadpoolctl import threadpool_limits

from vitonprep.engine import (
    ProgressCallback,
    Ready,
    RetryBudget,
    ShardLedger,
    ShardTask,
    ShardWork,
    WorkerSetupError,
    WorkFactory,
    chunk,
    error_line,
    run_task,
)
from vitonprep.engine.ledger import WORKER_DIED, is_fatal
from vitonprep.errors import ConfigError
from vitonprep.shards import ShardResult

logger = logging.getLogger(__name__)

__all__ = ["FORKSERVER_PRELOAD", "LocalDistributor", "ProgressCallback", "ShardTask", "chunk", "die_with_parent",
           "map_in_processes", "pool_context", "run_shard_tasks", "single_threaded_compute", "start_pool_server",
           "worker_init"]

#: imported once by the forkserver the local workers are forked from (see :func:`pool_context`); the first makes
#: the server die with the process that started it
FORKSERVER_PRELOAD = ["vitonprep.forkserver_guard", "vitonprep.preload"]


def die_with_parent(parent_pid: int | None = None) -> None:
    """Have the kernel kill this process when its parent dies (Linux ``PR_SET_PDEATHSIG``; elsewhere a no-op).

    Local build workers are children of the forkserver, which is a child of the build: with this in both, killing
    the build (even with SIGKILL, which runs no clean-up) takes the server and every worker with it, instead of
    leaving them to finish their shards into a folder nobody is building. ``parent_pid``: the process whose death
    may already have happened before this call; then this process exits at once.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - no prctl: nothing stronger to do
        return
    if parent_pid is not None:
        try:
            os.kill(parent_pid, 0)
        except ProcessLookupError:
            os._exit(1)
        except PermissionError:  # pragma: no cover - exists, another user's
            pass


def pool_context() -> mp.context.BaseContext:
    """The start method of the local build and validation pools.

    'forkserver' where the platform has it: a fresh server process imports numpy, OpenCV, mediapipe and the
    pipeline once (`vitonprep.preload`) and every worker is a fork of it, so a worker is ready after its model
    set-up instead of after ~0.6 s of imports of its own (and a second pool, validation's, starts at once). Not
    plain 'fork': the driver may hold model runtimes and threads (mediapipe, torch). 'spawn' where there is no
    forkserver (Windows).
    """
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(FORKSERVER_PRELOAD)
    return ctx


_ONE_THREAD = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def start_pool_server() -> None:
    """Start the forkserver if it is not running (early, so its imports overlap with the caller's planning); a
    no-op without one. The server imports numpy with one BLAS thread: a fork copies no thread, and a pool of
    idle BLAS threads would only be torn down in every child."""
    if pool_context().get_start_method() != "forkserver":
        return
    saved = {var: os.environ.get(var) for var in _ONE_THREAD}
    os.environ.update({var: "1" for var in _ONE_THREAD})
    try:
        forkserver.ensure_running()
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


def _worker_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` build workers: forked as :func:`pool_context` says, each initialised by
    :func:`worker_init` with the caller's current environment and log level."""
    start_pool_server()
    return ProcessPoolExecutor(max_workers=workers, mp_context=pool_context(), initializer=worker_init,
                               initargs=(dict(os.environ), os.getpid(), logging.getLogger().getEffectiveLevel()))


def worker_init(environ: dict[str, str] | None = None, driver_pid: int | None = None,
                log_level: int | None = None) -> None:
    """One shard per process already uses the cores: a build worker computes on one thread (OpenBLAS, OpenCV).

    numpy's OpenBLAS is the one that matters: after a matrix product its idle threads spin for a while, and the
    build calls small products often enough that one spinning thread per worker ran all the time and burnt as much
    CPU as the work itself (on the 2-core machine: 366 -> 238 ms of CPU per person with the same wall time, and the
    spinners of two workers fought over the cores). The environment variables come too late for a numpy that is
    already imported, so threadpoolctl sets the limit at run time; they still cover libraries imported later.
    """
    if environ is not None:
        # a forkserver's child inherits the server's environment, from whenever it started; spawn's children get
        # the parent's at the time of the pool, which is what settings such as fault injection rely on
        os.environ.clear()
        os.environ.update(environ)
    for var in _ONE_THREAD:
        os.environ.setdefault(var, "1")
    threadpool_limits(1, user_api="blas")
    try:
        import cv2  # heavy: imported where a worker starts, not by every importer of the runner

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover - cv2 comes with mediapipe
        pass
    if log_level is not None and log_level < logging.WARNING:
        # a forked worker has none of the CLI's handlers: without one, --verbose would show no debug line of a
        # worker (mediapipe's captured native lines among them); warnings travel back as recorded failures
        logging.basicConfig(level=log_level, format="%(levelname)s %(name)s: %(message)s")
    die_with_parent(driver_pid)


@contextmanager
def single_threaded_compute() -> Iterator[None]:
    """`worker_init`'s limits inside this process for the duration of an in-process build, then restored (the
    caller may be a notebook or a training job that wants its threads back)."""
    try:
        import cv2  # heavy: imported where a build runs, not by every importer of the runner
    except ImportError:  # pragma: no cover - cv2 comes with mediapipe
        cv2 = None
    cv2_threads = cv2.getNumThreads() if cv2 is not None else None
    with threadpool_limits(1, user_api="blas"):
        if cv2 is not None:
            cv2.setNumThreads(1)
        try:
            yield
        finally:
            if cv2 is not None:
                cv2.setNumThreads(cv2_threads)


@dataclass(frozen=True)
class LocalDistributor:
    """The `vitonprep.engine.Distributor` of this machine: ``workers`` processes of a pool (:func:`pool_context`),
    or this process when one worker (or one task) is enough."""

    workers: int = 1
    max_shard_retry: int = 2  # extra attempts for a shard whose task failed or whose worker died

    def run(self, ledger: ShardLedger, factory: WorkFactory) -> None:
        budget = RetryBudget(self.max_shard_retry)
        if self.workers <= 1 or len(ledger.todo) <= 1:
            with single_threaded_compute():  # the same per-worker thread policy as the process pool's workers
                work = _set_up(factory)
                for task in ledger.todo:
                    ledger.finish(_in_process(work, task, budget))
        else:
            for r in _in_pool(factory, ledger.todo, self.workers, budget):
                ledger.finish(r)


def run_shard_tasks(
    tasks: Sequence[ShardTask],
    work: Callable[[ShardTask], ShardResult],
    workers: int = 1,
    progress: ProgressCallback | None = None,
    max_shard_retry: int = 2,
) -> list[ShardResult]:
    """Run ``work`` on every task not yet complete (a `ShardLedger` and a `LocalDistributor` without a job's plan
    check and manifest); ``workers > 1`` uses a process pool (:func:`pool_context`).

    ``work`` must be picklable (a top-level function or a partial of one). Results come back in task order. A
    shard whose task raises, or whose worker dies (killed, out of memory), comes back with ``ShardResult.error``
    set once it has been tried ``1 + max_shard_retry`` times; the other shards go on, and a rerun retries it.
    """
    ledger = ShardLedger(tasks, progress)
    LocalDistributor(workers, max_shard_retry).run(ledger, Ready(work))
    return ledger.ordered()


def _set_up(factory: WorkFactory) -> ShardWork:
    """The work in this process; a set-up failure stops the run (every shard would fail the same way)."""
    try:
        return factory()
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"shard workers could not start: {error_line(exc)}") from exc


def _in_process(work: ShardWork, task: ShardTask, budget: RetryBudget) -> ShardResult:
    while True:
        budget.charge(task)
        try:
            return work(task)
        except Exception as exc:  # noqa: BLE001 - a shard's failure is recorded; the build goes on
            if is_fatal(exc):
                raise
            logger.debug("shard %d", task.index, exc_info=True)
            gave_up = budget.failed(task, error_line(exc))
        if gave_up is not None:
            return gave_up


def _in_pool(factory: WorkFactory, todo: Sequence[ShardTask], workers: int,
             budget: RetryBudget) -> Iterator[ShardResult]:
    """Results of ``todo`` from a process pool, as they finish.

    At most ``workers`` tasks are in the pool at a time, so when a worker dies (which breaks the whole
    ``ProcessPoolExecutor``) the tasks then in flight are exactly the ones that may have caused it: each was charged
    an attempt when it was submitted, and the survivors of the retry budget go to a new pool.
    """
    queue = deque(todo)
    token = uuid.uuid4().hex  # the pool's processes build the work once each (`run_task`)

    def retry_or_give_up(task: ShardTask, error: str) -> ShardResult | None:
        gave_up = budget.failed(task, error)
        if gave_up is None:
            queue.appendleft(task)
        return gave_up

    while queue:
        lost: list[ShardTask] = []
        with _worker_pool(workers) as pool:
            pending: dict[Future, ShardTask] = {}
            while (queue or pending) and not lost:
                while queue and len(pending) < workers:
                    task = queue.popleft()
                    budget.charge(task)
                    pending[pool.submit(run_task, token, factory, task)] = task
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    task = pending.pop(fut)
                    try:
                        result = fut.result()
                    except BrokenProcessPool:
                        lost.append(task)
                        continue
                    except WorkerSetupError as exc:
                        raise ConfigError(f"shard workers could not start: {exc}") from exc
                    except Exception as exc:  # noqa: BLE001 - recorded per shard, the build goes on
                        if is_fatal(exc):
                            raise  # every other shard would fail the same way: stop the build
                        logger.debug("shard %d", task.index, exc_info=exc)
                        gave_up = retry_or_give_up(task, error_line(exc))
                        if gave_up is not None:
                            yield gave_up
                        continue
                    yield result
            lost += pending.values()  # a broken pool takes every task in it down
        for task in reversed(lost):
            gave_up = retry_or_give_up(task, WORKER_DIED)
            if gave_up is not None:
                yield gave_up


def map_in_processes(fn: Callable[[Any], Any], items: Sequence[Any], workers: int = 1) -> Iterator[Any]:
    """``fn`` over ``items``, results in item order as they come; ``workers > 1``: a pool of build workers
    (one compute thread each). ``fn`` must be picklable (a top-level function or a partial of one)."""
    if workers <= 1 or len(items) <= 1:
        yield from map(fn, items)
        return
    with _worker_pool(min(workers, len(items))) as pool:
        yield from pool.map(fn, items)

