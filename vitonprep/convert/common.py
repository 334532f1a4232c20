"""Shared driver for `vitonprep convert`: plan samples, then one shard job of the engine (`vitonprep.engine`):
resume, parallel shards, retries and the manifest are the build's.

The converters (`vitonhd`, `dresscode`) build on `vitonprep.convert.base`; ``DATASETS``, ``ConvertConfig`` and
``PlannedSample`` are re-exported here for the code that imports them from this module (vitontrain, the API).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from vitonprep.convert import dresscode, vitonhd
from vitonprep.convert.base import DATASETS, ConvertConfig, PlannedSample  # noqa: F401 - re-exported (see above)
from vitonprep.engine import ProgressCallback, ShardJob, ShardTask, chunk, run_job
from vitonprep.errors import ConfigError, SampleError
from vitonprep.runner import LocalDistributor
from vitonprep.shards import Failure, Sample, ShardResult, read_stats, write_shard

logger = logging.getLogger(__name__)

#: dataset name -> its converter module (``plan``, ``make_sample``, ``LAYOUT_HINT``)
FORMATS = {"vitonhd": vitonhd, "dresscode": dresscode}


@dataclass
class ConvertReport:
    nsamples: int
    nshards: int
    failures: list[Failure]
    seconds: float
    skipped_shards: int
    pairs: dict[str, list[str]] = field(default_factory=dict)
    failed_shards: dict[int, str] = field(default_factory=dict)  # shard -> error, after the retries ran out


@dataclass(frozen=True)
class ConvertWork:
    """The conversion's `vitonprep.engine.WorkFactory`: ``make`` (a top-level function: it pickles by reference)
    on every planned sample of a shard; the failures planning already knew are recorded as they are."""

    make: Callable[[PlannedSample], Sample]

    def __call__(self) -> Callable[[ShardTask], ShardResult]:
        return self.shard

    def shard(self, task: ShardTask) -> ShardResult:
        samples, failures = [], []
        for item in task.items:
            if isinstance(item, Failure):  # planning already knew this one cannot be made
                failures.append(item)
                continue
            try:
                samples.append(self.make(item))
            except SampleError as exc:
                src = exc.source or item.files.get("image", item.key)
                failures.append(Failure(source=src, stage=exc.stage, reason=exc.reason, key=item.key))
                logger.warning("sample %s failed at %s: %s", item.key, exc.stage, exc.reason)
        return write_shard(task.out_dir, task.index, samples, failures)


def run_conversion(
    cfg: ConvertConfig,
    planned: Sequence[PlannedSample | Failure],
    make: Callable[[PlannedSample], Sample],
    info: dict[str, Any],
    progress: ProgressCallback | None = None,
) -> ConvertReport:
    """The conversion as a shard job (`vitonprep.engine.run_job`) on local processes."""
    t0 = time.perf_counter()
    cfg.out.mkdir(parents=True, exist_ok=True)
    tasks = tuple(ShardTask(i, cfg.out, items) for i, items in enumerate(chunk(list(planned), cfg.samples_per_shard)))
    pairs: dict[str, list[str]] = {}

    def manifest_info(results: list[ShardResult]) -> dict[str, Any]:
        pairs.update(_pair_lists(planned, results, cfg.out))
        return {**info, "pairs": pairs, "config": _jsonable(asdict(cfg))}

    job = ShardJob(out=cfg.out, name=cfg.name or cfg.source.name, tasks=tasks, work=ConvertWork(make),
                   plan={"samples_per_shard": cfg.samples_per_shard, "items": _plan_fingerprint(planned)},
                   manifest_info=manifest_info,
                   mismatch="holds shards of a different plan (other inputs or samples_per_shard); use an empty "
                            "output folder or --overwrite")
    results = run_job(job, LocalDistributor(cfg.workers), progress)
    return ConvertReport(
        nsamples=sum(r.nsamples for r in results),
        nshards=len(results),
        failures=[f for r in results for f in r.failures],
        seconds=time.perf_counter() - t0,
        skipped_shards=sum(r.skipped for r in results),
        pairs=pairs,
        failed_shards={r.index: r.error for r in results if r.error},
    )


def _plan_fingerprint(planned: Sequence[PlannedSample | Failure]) -> list[str]:
    return [p.key if isinstance(p, PlannedSample) else f"!{p.source}" for p in planned]


def _pair_lists(planned, results, out: Path) -> dict[str, list[str]]:
    """Pair lists per split/pairing, of the samples that really reached the shards (VITON-HD line format)."""
    written = set()
    for r in results:
        if not r.error:  # a shard whose retries ran out was not written
            written.update(s["key"] for s in read_stats(out, r.index)["samples"])
    lists: dict[str, list[str]] = {}
    for p in planned:
        if isinstance(p, PlannedSample) and p.key in written:
            lists.setdefault(f"{p.split}_{p.pair}", []).append(f"{p.person_id}.jpg {p.cloth_id}.jpg")
    return lists


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in d.items()}


def convert_dataset(cfg: ConvertConfig, progress: ProgressCallback | None = None) -> ConvertReport:
    """Library twin of `vitonprep convert`."""
    if not cfg.source.is_dir():
        raise ConfigError(f"source folder {cfg.source} does not exist")
    mod = FORMATS[cfg.dataset]
    planned, info = mod.plan(cfg)
    if not any(isinstance(p, PlannedSample) for p in planned):
        raise ConfigError(f"no samples found in {cfg.source} for a {cfg.dataset} layout ({mod.LAYOUT_HINT})")
    return run_conversion(cfg, planned, mod.make_sample, info, progress)
