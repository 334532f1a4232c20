"""Fault injection for the tests (never in the product): a build whose worker process dies once, mid-task.

`arm_exit_once(monkeypatch, path)` makes the next builds use `ExitOnceWork`: the first shard task, over every worker
process, that manages to delete ``path`` ends its process with ``os._exit`` after making its samples and before
writing its shard, as a killed or out-of-memory worker would. Worker processes import this module by name (the
class pickles by reference), so the tests folder must be on their path: it is for local pools (forked from a
server started with the test's ``sys.path``); Ray workers need it in ``PYTHONPATH``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import vitonprep.build
from vitonprep.build_worker import BuildWork, ShardMaker
from vitonprep.engine import ShardTask, ShardWork
from vitonprep.shards import ShardResult

logger = logging.getLogger(__name__)

#: names the file whose deletion fires the fault (read in the worker process)
EXIT_ONCE_ENV = "VITONPREP_TEST_EXIT_ONCE"


def exit_once_if_armed() -> None:
    """``os._exit(17)`` in the one process that wins the unlink of $EXIT_ONCE_ENV's file; else nothing."""
    path = os.environ.get(EXIT_ONCE_ENV)
    if not path:
        return
    try:
        os.unlink(path)  # only one process can win the unlink: the fault fires exactly once per file
    except FileNotFoundError:
        return
    logger.warning("fault injection (%s): exiting this process mid-task", EXIT_ONCE_ENV)
    os._exit(17)


class ExitOnceWork(BuildWork):
    """The build's work with `exit_once_if_armed` between making a shard's samples and writing it."""

    def __call__(self) -> ShardWork:
        maker: ShardMaker = super().__call__()

        def work(task: ShardTask) -> ShardResult:
            made = maker.make(task)
            exit_once_if_armed()
            return maker.write(task, *made)

        return work


def arm_exit_once(monkeypatch, path: Path) -> None:
    """Builds started after this (in this test) use `ExitOnceWork`, armed with ``path`` (created here)."""
    Path(path).write_text("exit once")
    monkeypatch.setenv(EXIT_ONCE_ENV, str(path))
    monkeypatch.setattr(vitonprep.build, "BuildWork", ExitOnceWork)
