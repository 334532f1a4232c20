"""The bookkeeping every distributor shares: which shards a previous run finished, results as they come, and one
retry budget per shard."""

from __future__ import annotations

import errno
import logging
from typing import Collection, Sequence

from vitonprep.engine.tasks import ProgressCallback, ShardTask
from vitonprep.errors import ConfigError
from vitonprep.shards import Failure, ShardResult, completed_shards, read_stats

logger = logging.getLogger(__name__)

#: the error of a shard whose worker process died mid-task
WORKER_DIED = "its worker process died (killed, or out of memory)"


def skipped_result(task: ShardTask) -> ShardResult:
    """The result of a shard a previous run finished, read back from its stats file."""
    st = read_stats(task.out_dir, task.index)
    fails = [Failure(f["source"], f["stage"], f["reason"], f.get("key")) for f in st.get("failures", [])]
    return ShardResult(index=task.index, nsamples=st["nsamples"], failures=fails, skipped=True)


class ShardLedger:
    """Which planned shards a previous run already finished (read back from their stats files), each result as it
    comes, progress calls, and the results in task order at the end.

    ``finished``: the shard indices already complete; by default one listing per destination (cheaper on object
    stores than two existence checks per shard)."""

    def __init__(self, tasks: Sequence[ShardTask], progress: ProgressCallback | None = None,
                 finished: Collection[int] | None = None):
        self.tasks = list(tasks)
        self.progress = progress
        self.results: dict[int, ShardResult] = {}
        self.todo: list[ShardTask] = []
        listed = {str(d): set(completed_shards(d)) for d in {t.out_dir for t in self.tasks}} if finished is None \
            else None
        for task in self.tasks:
            done = task.index in finished if listed is None else task.index in listed[str(task.out_dir)]
            if done:
                self.results[task.index] = skipped_result(task)
            else:
                self.todo.append(task)
        self.done = len(self.results)
        if self.results:
            logger.info("resuming: %d of %d shards already complete", self.done, len(self.tasks))
        for r in list(self.results.values()):
            self._report(r)

    def _report(self, result: ShardResult) -> None:
        if self.progress:
            self.progress(result, self.done, len(self.tasks))

    def finish(self, result: ShardResult) -> None:
        self.results[result.index] = result
        self.done += 1
        self._report(result)

    def ordered(self) -> list[ShardResult]:
        return [self.results[t.index] for t in self.tasks]


class RetryBudget:
    """``1 + max_shard_retry`` attempts per shard: each attempt is charged when it starts; a failed one is retried
    while attempts remain, then the shard comes back with ``ShardResult.error`` (the run goes on; a rerun of the
    same command retries it)."""

    def __init__(self, max_shard_retry: int):
        self.max_shard_retry = max_shard_retry
        self.attempts: dict[int, int] = {}

    def charge(self, task: ShardTask) -> int:
        n = self.attempts[task.index] = self.attempts.get(task.index, 0) + 1
        return n

    def failed(self, task: ShardTask, error: str) -> ShardResult | None:
        """None when ``task`` may be tried again (the caller queues it), else its given-up result."""
        n = self.attempts.get(task.index, 0)
        if n <= self.max_shard_retry:
            logger.warning("shard %d, attempt %d of %d failed (%s); retrying", task.index, n,
                           self.max_shard_retry + 1, error)
            return None
        logger.error("shard %d failed %d times, giving up (rerun to retry): %s", task.index, n, error)
        return ShardResult(index=task.index, nsamples=0, error=error)


def is_fatal(exc: BaseException) -> bool:
    """Errors every other shard would hit the same way, so they stop the run instead of failing one shard: a wrong
    set-up (ConfigError) and a full disk."""
    return isinstance(exc, ConfigError) or (isinstance(exc, OSError) and exc.errno == errno.ENOSPC)


def error_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
