"""Shard-parallel execution with resume: work spread over local processes (`vitonprep.distribute` runs the same
tasks on Ray).

A job is a list of shard tasks planned deterministically up front. Each task makes the samples of one output
shard and writes it atomically (`vitonprep.shards.write_shard`). Finished shards (stats file present) are skipped,
so a rerun after a crash resumes where it stopped; a shard is never written twice into the output.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from vitonprep.shards import Failure, Location, ShardResult, is_shard_complete, read_stats

logger = logging.getLogger(__name__)

#: called after each shard: (result, shards_done, shards_total)
ProgressCallback = Callable[[ShardResult, int, int], None]


@dataclass(frozen=True)
class ShardTask:
    index: int
    out_dir: Location  # a local folder or an fsspec URL
    items: tuple[Any, ...]


#: imported once by the forkserver the local workers are forked from (see :func:`pool_context`)
FORKSERVER_PRELOAD = ["vitonprep.preload"]


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
    from multiprocessing import forkserver

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
    :func:`_worker_init` with the caller's current environment."""
    start_pool_server()
    return ProcessPoolExecutor(max_workers=workers, mp_context=pool_context(), initializer=_worker_init,
                               initargs=(dict(os.environ),))


def _worker_init(environ: dict[str, str] | None = None) -> None:
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
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover - cv2 comes with mediapipe
        pass


@contextmanager
def single_threaded_compute() -> Iterator[None]:
    """`_worker_init`'s limits inside this process for the duration of an in-process build, then restored (the
    caller may be a notebook or a training job that wants its threads back)."""
    from threadpoolctl import threadpool_limits

    try:
        import cv2
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


def skipped_result(task: ShardTask) -> ShardResult:
    """The result of a shard a previous run finished, read back from its stats file."""
    st = read_stats(task.out_dir, task.index)
    fails = [Failure(f["source"], f["stage"], f["reason"], f.get("key")) for f in st.get("failures", [])]
    return ShardResult(index=task.index, nsamples=st["nsamples"], failures=fails, skipped=True)


def run_shard_tasks(
    tasks: Sequence[ShardTask],
    work: Callable[[ShardTask], ShardResult],
    workers: int = 1,
    progress: ProgressCallback | None = None,
) -> list[ShardResult]:
    """Run ``work`` on every task not yet complete; ``workers > 1`` uses a process pool (:func:`pool_context`).

    ``work`` must be a picklable top-level function. Results come back in task order.
    """
    results: dict[int, ShardResult] = {}
    todo = []
    for task in tasks:
        if is_shard_complete(task.out_dir, task.index):
            results[task.index] = skipped_result(task)
        else:
            todo.append(task)
    done = len(results)
    total = len(tasks)
    if results:
        logger.info("resuming: %d of %d shards already complete", done, total)
    for r in list(results.values()):
        if progress:
            progress(r, done, total)
    if workers <= 1 or len(todo) <= 1:
        with single_threaded_compute():  # the same per-worker thread policy as the process pool's workers
            for task in todo:
                r = work(task)
                results[task.index] = r
                done += 1
                if progress:
                    progress(r, done, total)
    else:
        with _worker_pool(workers) as pool:
            pending: dict[Future, ShardTask] = {pool.submit(work, t): t for t in todo}
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    task = pending.pop(fut)
                    r = fut.result()
                    results[task.index] = r
                    done += 1
                    if progress:
                        progress(r, done, total)
    return [results[t.index] for t in tasks]


def map_in_processes(fn: Callable[[Any], Any], items: Sequence[Any], workers: int = 1) -> Iterator[Any]:
    """``fn`` over ``items``, results in item order as they come; ``workers > 1``: a pool of build workers
    (one compute thread each). ``fn`` must be picklable (a top-level function or a partial of one)."""
    if workers <= 1 or len(items) <= 1:
        yield from map(fn, items)
        return
    with _worker_pool(min(workers, len(items))) as pool:
        yield from pool.map(fn, items)


def chunk(items: Sequence[Any], size: int) -> list[tuple[Any, ...]]:
    if size < 1:
        raise ValueError("samples per shard must be >= 1")
    return [tuple(items[i : i + size]) for i in range(0, len(items), size)]
