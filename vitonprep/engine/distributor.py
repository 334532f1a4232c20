"""The distributor protocol: where the shard tasks of a job run."""

from __future__ import annotations

from typing import Protocol

from vitonprep.engine.ledger import ShardLedger
from vitonprep.engine.tasks import WorkFactory


class Distributor(Protocol):
    """Runs the tasks of ``ledger.todo`` (the ones no previous run finished) and hands each outcome to
    ``ledger.finish``: the shard's result, or, after the distributor's `RetryBudget` ran out, a result with
    ``error`` set. Errors every shard would hit (`vitonprep.engine.ledger.is_fatal`, a work that cannot be set up)
    are raised. Implementations: `vitonprep.runner.LocalDistributor` (this process or a local process pool) and
    `vitonprep.distribute.RayDistributor` (Ray tasks)."""

    def run(self, ledger: ShardLedger, factory: WorkFactory) -> None: ...
