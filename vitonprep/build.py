"""`vitonprep build IN OUT`: raw photos (or existing shards) -> validated shards, with the stages of a pipeline YAML.

This module is the driver: it plans the job and hands it to the shard-job engine (`vitonprep.engine.run_job`).
Each output shard is one task (its samples are planned up front and sorted); the work that makes a shard runs in
worker processes (`vitonprep.build_worker`), on this machine (`vitonprep.runner.LocalDistributor`) or on a Ray
cluster (`vitonprep.distribute.ray_build`, ``distributor="ray"``). A rerun skips shards whose stats file exists,
so a killed build loses at most its in-flight shards and never duplicates a sample. OUT may be any fsspec URL.

IN is a raw folder (``vitonprep.raw``) or a folder of vitonprep shards (`vitonprep.rebuild`): then output shard i
is input shard i with the pipeline's stages re-run on its person and garment photos; members the pipeline does not
make are carried over, and the stored photos are kept byte for byte.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vitonprep.build_worker import BuildWork
from vitonprep.config import PipelineConfig
from vitonprep.distribute.ray_build import RayBuildDistributor
from vitonprep.distribute.ray_runner import RayOptions, import_ray
from vitonprep.engine import Distributor, ProgressCallback, ShardJob, ShardTask, chunk, run_job
from vitonprep.errors import ConfigError
from vitonprep.raw import plan_raw
from vitonprep.rebuild import is_shard_dataset, plan_shards
from vitonprep.runner import LocalDistributor, start_pool_server
from vitonprep.shards import Failure, Location, is_url, read_stats
from vitonprep.stages import Pipeline, QualityCounts

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildOptions:
    workers: int | None = None  # local: processes (None = 1); ray: shard workers (None = as many as CPUs hold)
    pairs_file: Path | None = None
    strict: bool = False
    distributor: str = "local"  # "local" | "ray"
    ray_address: str | None = None  # None: the running ray.init() or a new local instance; "auto"; "HOST:PORT"
    max_shard_retry: int = 2  # extra attempts for a shard whose task failed or whose worker died


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
    failed_shards: dict[int, str] = field(default_factory=dict)  # shard -> error, after the retries ran out
    #: the quality stage's counts over every shard of OUT (resumed ones too, from their stats files); None when
    #: the pipeline has no quality stage (``quality.enabled: false``)
    quality: QualityCounts | None = None


def _plan_fingerprint(cfg: PipelineConfig) -> dict[str, Any]:
    """The pipeline as it shapes the output: stage resources say where stages run and ``weights_dir`` where weight
    files are found, not what they make, so a build may resume on another cluster layout or machine."""
    d = json.loads(json.dumps(cfg.to_dict(), default=str))
    d.pop("weights_dir", None)
    for choice in d["stages"].values():
        choice.pop("resources", None)
    return d


def _distributor(cfg: PipelineConfig, options: BuildOptions) -> Distributor:
    if options.distributor == "ray":
        return RayBuildDistributor(cfg, RayOptions(address=options.ray_address, workers=options.workers,
                                                   max_shard_retry=options.max_shard_retry))
    return LocalDistributor(options.workers or 1, options.max_shard_retry)


def build_dataset(cfg: PipelineConfig, raw: Location, out: Location, options: BuildOptions = BuildOptions(),
                  progress: ProgressCallback | None = None) -> BuildReport:
    """Library twin of `vitonprep build`. Raises ConfigError before any image is touched if the pipeline, the
    input or the distributor is wrong."""
    t0 = time.perf_counter()
    if options.distributor not in ("local", "ray"):
        raise ConfigError(f"distributor: {options.distributor!r} is not one of local, ray")
    if options.distributor == "ray":
        import_ray()  # fail now, with the install hint, rather than after planning
    if options.distributor == "local" and (options.workers or 1) > 1:
        start_pool_server()  # the workers' imports run while this process plans
    Pipeline.from_config(cfg)  # resolves every back-end name and parameter now, not in a worker
    plan: dict[str, Any] = {"pipeline": _plan_fingerprint(cfg)}
    if is_shard_dataset(raw):
        shard_plan = plan_shards(raw)
        tasks = [ShardTask(idx, out, items) for idx, items in shard_plan]
        keys = [i.key for _, items in shard_plan for i in items]
        info = {"source_dataset": "vitonprep shards", "input": str(raw), "layout": "shards"}
        unused: tuple[str, ...] = ()
        skipped: tuple[Failure, ...] = ()
        plan.update(items=keys, input_shards=str(raw))
    else:
        if is_url(raw):
            raise ConfigError(f"{raw}: remote inputs must be vitonprep shards (no finished shard found there)")
        raw_plan = plan_raw(Path(raw), options.pairs_file)
        tasks = [ShardTask(i, out, items)
                 for i, items in enumerate(chunk(list(raw_plan.items), cfg.samples_per_shard))]
        keys = [i.key for i in raw_plan.items]
        info = {"source_dataset": "raw photos", "input": str(raw), "layout": raw_plan.layout}
        unused, skipped = raw_plan.unused_garments, raw_plan.skipped
        plan.update(items=keys)
    manifest = {**info, "pipeline": cfg.to_dict(), "unused_garments": list(unused),
                "skipped_inputs": [f.to_dict() for f in skipped]}
    job = ShardJob(out=out, name=cfg.name, tasks=tuple(tasks), plan=plan, work=BuildWork(cfg),
                   manifest_info=lambda results: manifest, extra_json={"_config.json": cfg.to_dict()},
                   mismatch="holds shards of a different build (other inputs or pipeline); use an empty output "
                            "folder or --overwrite")
    results = run_job(job, _distributor(cfg, options), progress)
    stage_seconds: dict[str, float] = {}
    quality = QualityCounts() if cfg.quality.enabled else None
    for r in results:
        if not r.error:
            stats = read_stats(out, r.index)
            for k, v in stats.get("stage_seconds", {}).items():
                stage_seconds[k] = stage_seconds.get(k, 0.0) + v
            counts = QualityCounts.from_dict(stats.get("quality"))
            if quality is not None and counts is not None:
                quality.merge(counts)
    return BuildReport(
        nsamples=sum(r.nsamples for r in results), nplanned=len(keys), nshards=len(results),
        skipped_shards=sum(r.skipped for r in results),
        failures=list(skipped) + [f for r in results for f in r.failures],
        seconds=time.perf_counter() - t0, stage_seconds=stage_seconds, unused_garments=unused,
        failed_shards={r.index: r.error for r in results if r.error}, quality=quality,
    )
