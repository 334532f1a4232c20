"""The shard-job engine: one path from a plan to finished shards for `vitonprep build`, `vitonprep convert` and
rebuilds from shards.

A job (`ShardJob`) is a deterministic list of shard tasks, the fingerprint of what shapes their output, and the
work that makes one shard. `run_job` runs it the same way for every command:

plan -> fingerprint check (``_plan.json``: a rerun resumes only into the same plan) -> the tasks a previous run did
not finish (`ShardLedger`) -> a `Distributor` (local processes: `vitonprep.runner.LocalDistributor`; Ray:
`vitonprep.distribute`) -> results as they come, retried within one budget (`RetryBudget`) -> ``manifest.json``.

The work is a `WorkFactory`: a picklable callable that a worker process calls once to build its per-process state
(a pipeline and its models) and that returns the function making one shard (`run_task` keeps it per process).
"""

from vitonprep.engine.distributor import Distributor
from vitonprep.engine.job import ShardJob, check_plan, run_job
from vitonprep.engine.ledger import RetryBudget, ShardLedger, error_line, skipped_result
from vitonprep.engine.tasks import ProgressCallback, Ready, ShardTask, ShardWork, WorkFactory, chunk
from vitonprep.engine.worker import WorkerSetupError, run_task

__all__ = ["Distributor", "ProgressCallback", "Ready", "RetryBudget", "ShardJob", "ShardLedger", "ShardTask",
           "ShardWork", "WorkFactory", "WorkerSetupError", "check_plan", "chunk", "error_line", "run_job",
           "run_task", "skipped_result"]
