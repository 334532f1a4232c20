"""One shard job, run the same way by build, convert and rebuild-from-shards."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from vitonprep.engine.distributor import Distributor
from vitonprep.engine.ledger import ShardLedger
from vitonprep.engine.tasks import ProgressCallback, ShardTask, WorkFactory
from vitonprep.errors import ConfigError
from vitonprep.outdir import output_lock
from vitonprep.shards import Location, ShardResult, read_json, write_json, write_manifest

logger = logging.getLogger(__name__)

PLAN_NAME = "_plan.json"


@dataclass(frozen=True)
class ShardJob:
    """``tasks`` into ``out``, made by ``work``. ``plan`` is what shapes the output (inputs, settings): a rerun
    resumes only into a folder planned the same way, else ConfigError(``mismatch``). After the tasks,
    ``manifest.json`` is written with ``manifest_info(results)``, and every ``extra_json`` file beside it."""

    out: Location
    name: str
    tasks: tuple[ShardTask, ...]
    plan: Mapping[str, Any]
    work: WorkFactory
    manifest_info: Callable[[list[ShardResult]], dict[str, Any]]
    mismatch: str = "holds shards of a different plan; use an empty output folder or --overwrite"
    extra_json: Mapping[str, Any] = field(default_factory=dict)


def check_plan(out: Location, plan: Mapping[str, Any], mismatch: str) -> None:
    """Refuse to resume into ``out`` when it was planned differently (shards of two plans would mix); record the
    plan in a fresh folder."""
    current = json.loads(json.dumps(plan, default=str))  # as it reads back (tuples are lists)
    previous = read_json(out, PLAN_NAME)
    if previous is None:
        write_json(out, PLAN_NAME, current)
    elif previous != current:
        raise ConfigError(f"{out} {mismatch}")


def run_job(job: ShardJob, distributor: Distributor, progress: ProgressCallback | None = None) -> list[ShardResult]:
    """Run ``job`` with ``distributor``; results in task order (a shard that could not be made has ``error``)."""
    with output_lock(job.out):  # one writer at a time (the CLI already holds it; nesting is free)
        check_plan(job.out, job.plan, job.mismatch)
        ledger = ShardLedger(job.tasks, progress)
        if ledger.todo:
            distributor.run(ledger, job.work)
        results = ledger.ordered()
        write_manifest(job.out, job.name, job.manifest_info(results))
        for name, obj in job.extra_json.items():
            write_json(job.out, name, obj)
    return results
