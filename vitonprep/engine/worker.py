"""The worker-process side of every distributor: the work is built once per process and run on each task."""

from __future__ import annotations

from typing import Callable

from vitonprep.engine.ledger import error_line
from vitonprep.engine.tasks import ShardTask, ShardWork, WorkFactory
from vitonprep.errors import ConfigError, VitonprepError
from vitonprep.shards import ShardResult


class WorkerSetupError(VitonprepError):
    """The shard work could not be built in a worker process (missing weights, import error): not a shard's
    fault, so the run stops instead of failing every shard the same way (a ConfigError raised by the set-up is
    passed on as it is, and stops the run too)."""


# per worker process: the work of the current run, built once by its factory (one run at a time: a new run's
# token drops the previous run's work)
_WORK: dict[str, ShardWork] = {}


def run_task(token: str, factory: WorkFactory, task: ShardTask,
             init: Callable[[], None] | None = None) -> ShardResult:
    """One shard in a worker process: the run's work (built by ``factory`` on the process's first task of run
    ``token``, after ``init``) on ``task``. A top-level function, so it pickles by reference."""
    work = _WORK.get(token)
    if work is None:
        _WORK.clear()
        if init is not None:
            init()
        try:
            work = factory()
        except ConfigError:
            raise  # already says what is wrong with the set-up
        except Exception as exc:
            raise WorkerSetupError(error_line(exc)) from exc
        _WORK[token] = work
    return work(task)

