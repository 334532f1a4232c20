"""`vitonprep build raw/ out/`: raw photos -> validated shards, with the stages of a pipeline YAML.

Each output shard is one task (its samples are planned up front and sorted); a worker process builds the
pipeline once, runs it on every sample of its shard, and writes the shard atomically. A rerun skips shards whose
stats file exists, so a killed build loses at most its in-flight shards and never duplicates a sample.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from vitonprep.config import PipelineConfig
from vitonprep.errors import ConfigError, SampleError
from vitonprep.raw import RawItem, plan_raw
from vitonprep.runner import ProgressCallback, ShardTask, chunk, run_shard_tasks
from vitonprep.shards import Failure, ShardResult, write_manifest, write_shard

logger = logging.getLogger(__name__)

_PIPELINES: dict[str, Any] = {}  # one set-up pipeline per worker process and config


@dataclass(frozen=True)
class BuildOptions:
    workers: int = 1
    pairs_file: Path | None = None
    strict: bool = False


@dataclass
class BuildReport:
    nsamples: int
    nplanned: int
    nshards: int
    skipped_shards: int
    failures: list[Failure]
    seconds: float
    stage_seconds: dict[str, float] = field(default_factory=dict)
    unused_garments: tuple[str, ...] = ()


def _pipeline(cfg: PipelineConfig):
    from vitonprep.stages import Pipeline

    key = json.dumps(cfg.to_dict(), sort_keys=True, default=str)
    pipe = _PIPELINES.get(key)
    if pipe is None:
        pipe = _PIPELINES[key] = Pipeline.from_config(cfg)
    return pipe


def _build_shard(cfg: PipelineConfig, task: ShardTask) -> ShardResult:
    pipe = _pipeline(cfg)
    samples, failures, timings = [], [], {}
    for item in task.items:
        try:
            samples.append(pipe.run(item, timings))
        except SampleError as exc:
            failures.append(Failure(source=exc.source or item.person, stage=exc.stage, reason=exc.reason,
                                    key=item.key))
            logger.warning("%s failed at %s: %s", item.key, exc.stage, exc.reason)
    return write_shard(task.out_dir, task.index, samples, failures,
                       extra_stats={"stage_seconds": {k: round(v, 4) for k, v in timings.items()}})


def _check_plan(out: Path, cfg: PipelineConfig, items: tuple[RawItem, ...]) -> None:
    plan_file = out / "_plan.json"
    current = {"pipeline": cfg.to_dict(), "items": [i.key for i in items]}
    current = json.loads(json.dumps(current, default=str))
    if plan_file.is_file():
        if json.loads(plan_file.read_text()) != current:
            raise ConfigError(f"{out} holds shards of a different build (other inputs or pipeline); "
                              "use an empty output folder or --overwrite")
    else:
        out.mkdir(parents=True, exist_ok=True)
        plan_file.write_text(json.dumps(current))


def build_dataset(cfg: PipelineConfig, raw: Path, out: Path, options: BuildOptions = BuildOptions(),
                  progress: ProgressCallback | None = None) -> BuildReport:
    """Library twin of `vitonprep build`. Raises ConfigError before any image is touched if the pipeline or the
    input folder is wrong."""
    from vitonprep.stages import Pipeline

    t0 = time.perf_counter()
    Pipeline.from_config(cfg)  # resolves every back-end name and parameter now, not in a worker
    plan = plan_raw(raw, options.pairs_file)
    _check_plan(out, cfg, plan.items)
    tasks = [ShardTask(i, out, items) for i, items in enumerate(chunk(list(plan.items), cfg.samples_per_shard))]
    results = run_shard_tasks(tasks, partial(_build_shard, cfg), workers=options.workers, progress=progress)
    stage_seconds: dict[str, float] = {}
    for r in results:
        from vitonprep.shards import read_stats

        for k, v in read_stats(out, r.index).get("stage_seconds", {}).items():
            stage_seconds[k] = stage_seconds.get(k, 0.0) + v
    write_manifest(out, cfg.name, {
        "source_dataset": "raw photos",
        "input": str(raw),
        "layout": plan.layout,
        "pipeline": cfg.to_dict(),
        "unused_garments": list(plan.unused_garments),
    })
    (out / "_config.json").write_text(json.dumps(cfg.to_dict(), indent=1, default=str))
    return BuildReport(
        nsamples=sum(r.nsamples for r in results), nplanned=len(plan.items), nshards=len(results),
        skipped_shards=sum(r.skipped for r in results), failures=[f for r in results for f in r.failures],
        seconds=time.perf_counter() - t0, stage_seconds=stage_seconds, unused_garments=plan.unused_garments,
    )
