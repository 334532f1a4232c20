"""`vitonprep build IN OUT`: raw photos (or existing shards) -> validated shards, with the stages of a pipeline YAML.

Each output shard is one task (its samples are planned up front and sorted); a worker builds the pipeline once,
runs it on every sample of its shard, and writes the shard atomically. A rerun skips shards whose stats file
exists, so a killed build loses at most its in-flight shards and never duplicates a sample. The same tasks run
in local processes (`vitonprep.runner`) or on a Ray cluster (`vitonprep.distribute`, ``distributor="ray"``);
OUT may be any fsspec URL.

IN is a raw folder (``vitonprep.raw``) or a folder of vitonprep shards (shard-to-shard): then output shard i is
input shard i with the pipeline's stages re-run on its person and garment photos; members the pipeline does not
make are carried over, and the stored photos are kept byte for byte.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from vitonprep.config import PipelineConfig
from vitonprep.errors import ConfigError, SampleError
from vitonprep.outdir import output_lock
from vitonprep.raw import RawItem, plan_raw
from vitonprep.runner import ProgressCallback, ShardTask, chunk, run_shard_tasks, start_pool_server
from vitonprep.shards import (
    Failure, Location, Sample, ShardResult, ShardStore, completed_shards, is_url, iter_tar_samples, read_json,
    read_stats, shard_name, stats_name, write_json, write_manifest, write_shard,
)

logger = logging.getLogger(__name__)

_MAKERS: dict[str, "ShardMaker"] = {}  # one set-up pipeline per worker process and config

#: test-only fault injection: when this variable names a file, the first shard task that manages to delete it
#: ends its process with os._exit mid-task (samples made, nothing written), as a killed or OOM worker would
FAULT_EXIT_ONCE_ENV = "VITONPREP_FAULT_EXIT_ONCE"


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


@dataclass(frozen=True)
class ShardItem:
    """One sample of an input shard (shard-to-shard builds)."""

    key: str
    source: str  # input dataset location (local folder or fsspec URL)
    shard: int


#: runs one stage on a batch of contexts somewhere else (a Ray actor); returns contexts or SampleErrors
RemoteStage = Callable[[int, list[dict[str, Any]]], tuple[list[Any], dict[str, float]]]


@dataclass(frozen=True)
class Offload:
    """A stage that runs outside the shard worker, ``batch_size`` samples per call."""

    call: RemoteStage
    batch_size: int = 1


class ShardMaker:
    """Makes one output shard from a task: the pipeline's stages on every item, failures recorded, then the
    atomic write. Stages named in ``offload`` are sent, in batches, to another process instead of run here."""

    def __init__(self, cfg: PipelineConfig, offload: Mapping[str, Offload] | None = None):
        from vitonprep.stages import Pipeline

        self.cfg = cfg
        self.pipe = Pipeline.from_config(cfg)
        self.offload = dict(offload or {})
        for stage in self.pipe.stages:
            if stage.name not in self.offload:
                stage.setup()  # models are loaded once per worker process, and only for stages run here
        self.pipe.ready = True
        self.batch = max([o.batch_size for o in self.offload.values()], default=1)
        self.calls = 0  # numbers offloaded calls, so consecutive batches go to different actors

    def __call__(self, task: ShardTask) -> ShardResult:
        samples: list[Sample] = []
        failures: list[Failure] = []
        timings: dict[str, float] = {}
        shard_input = bool(task.items) and isinstance(task.items[0], ShardItem)
        inputs = _read_input_shard(task.items) if shard_input else {}
        if not self.offload and not shard_input:
            for item in task.items:  # the plain path: exactly `Pipeline.run`, as the local runner always did
                try:
                    samples.append(self.pipe.run(item, timings))
                except SampleError as exc:
                    failures.append(_failure(exc, item))
        else:
            for part in chunk(list(task.items), self.batch):
                made, failed = self._run_part(task.index, part, inputs, timings)
                samples += made
                failures += failed
        _exit_once_if_asked()
        return write_shard(task.out_dir, task.index, samples, failures,
                           extra_stats={"stage_seconds": {k: round(v, 4) for k, v in timings.items()}})

    def _run_part(self, shard: int, items: Sequence[Any], inputs: dict[str, Sample],
                  timings: dict[str, float]) -> tuple[list[Sample], list[Failure]]:
        """`Pipeline.run` on a few items at once, stage by stage, so offloaded stages see batches."""
        ctxs: list[Any] = []
        failed: dict[int, Failure] = {}  # by item, so failures are listed in item order as on the plain path
        for i, item in enumerate(items):
            try:
                ctxs.append(_input_context(self.cfg, item, inputs) if isinstance(item, ShardItem)
                            else {"item": item, "producers": {}})
            except SampleError as exc:
                ctxs.append(None)
                failed[i] = _failure(exc, item)
        # shard input: _input_context already did the load stage's job, from the stored photos
        stages = [s for s in self.pipe.stages if not (s.name == "load" and isinstance(items[0], ShardItem))]
        for stage in stages:
            live = [i for i, c in enumerate(ctxs) if c is not None]
            if stage.name in self.offload:
                off = self.offload[stage.name]
                for part in chunk(live, off.batch_size):
                    self.calls += 1
                    outs, secs = off.call(shard + self.calls, [ctxs[i] for i in part])
                    timings[stage.name] = timings.get(stage.name, 0.0) + secs.get(stage.name, 0.0)
                    for i, out in zip(part, outs):
                        ctxs[i] = out
                for i in live:
                    if isinstance(ctxs[i], SampleError):
                        failed[i] = _failure(ctxs[i], items[i])
                        ctxs[i] = None
                continue
            for i in live:
                t0 = time.perf_counter()
                try:
                    stage(ctxs[i])
                except SampleError as exc:
                    failed[i] = _failure(exc, items[i])
                    ctxs[i] = None
                timings[stage.name] = timings.get(stage.name, 0.0) + time.perf_counter() - t0
        samples = []
        for item, ctx in zip(items, ctxs):
            if ctx is None:
                continue
            t0 = time.perf_counter()
            sample = self.pipe.encode(ctx)
            if isinstance(item, ShardItem):
                sample = _carry_over(inputs[item.key], sample, item)
            samples.append(sample)
            timings["encode"] = timings.get("encode", 0.0) + time.perf_counter() - t0
        return samples, [failed[i] for i in sorted(failed)]


def _failure(exc: SampleError, item: Any) -> Failure:
    source = exc.source or (item.person if isinstance(item, RawItem) else f"{item.source}:{item.key}")
    logger.warning("%s failed at %s: %s", item.key, exc.stage, exc.reason)
    return Failure(source=source, stage=exc.stage, reason=exc.reason, key=item.key)


def _exit_once_if_asked() -> None:
    path = os.environ.get(FAULT_EXIT_ONCE_ENV)
    if not path:
        return
    try:
        os.unlink(path)  # only one process can win the unlink: the fault fires exactly once per file
    except FileNotFoundError:
        return
    logger.warning("fault injection (%s): exiting this process mid-task", FAULT_EXIT_ONCE_ENV)
    os._exit(17)


def shard_maker(cfg: PipelineConfig) -> ShardMaker:
    key = json.dumps(cfg.to_dict(), sort_keys=True, default=str)
    maker = _MAKERS.get(key)
    if maker is None:
        maker = _MAKERS[key] = ShardMaker(cfg)
    return maker


def _build_shard(cfg: PipelineConfig, task: ShardTask) -> ShardResult:
    return shard_maker(cfg)(task)


# ---------------------------------------------------------------- shard-to-shard input

def is_shard_dataset(location: Location) -> bool:
    """A folder (or URL) holding finished vitonprep shards, as opposed to raw photos."""
    if not is_url(location) and not Path(location).is_dir():
        return False
    return bool(completed_shards(location))


def plan_shards(location: Location) -> list[tuple[int, tuple[ShardItem, ...]]]:
    """Input shard index -> its samples, from the stats files (the tars are read by the workers, not here)."""
    from vitonprep.schema import check_key

    src = str(location)
    plan = []
    for idx in completed_shards(location):
        try:  # the input's stats files are untrusted: keys become tar member names of the output
            keys = [check_key(r["key"]) for r in read_stats(location, idx)["samples"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{src}/{stats_name(idx)} is not a vitonprep stats "
                              f"file ({type(exc).__name__}: {exc}); run vitonprep validate on the input") from None
        plan.append((idx, tuple(ShardItem(k, src, idx) for k in sorted(keys))))
    return plan


def _read_input_shard(items: Sequence[ShardItem]) -> dict[str, Sample]:
    shards = {(i.source, i.shard) for i in items}
    if len(shards) != 1:
        raise ValueError(f"a task must read exactly one input shard, got {sorted(shards)}")
    source, idx = shards.pop()
    with ShardStore(source).open_read(shard_name(idx)) as fh:
        return {s.key: s for s in iter_tar_samples(fh)}


def _input_context(cfg: PipelineConfig, item: ShardItem, inputs: dict[str, Sample]) -> dict[str, Any]:
    """What LoadStage makes from files, made from the photos stored in the input sample."""
    from vitonprep.photos import PhotoError, fit_to_canvas, load_photo

    sample = inputs.get(item.key)
    if sample is None or "image.jpg" not in sample.members:
        raise SampleError("load_person", "input sample has no image.jpg", f"{item.source}:{item.key}")
    meta = json.loads(sample.members.get("meta.json", b"{}"))
    root = f"{item.source}/{shard_name(item.shard)}"
    ctx: dict[str, Any] = {"producers": {}}
    for what, member in (("person", "image.jpg"), ("cloth", "cloth.jpg")):
        data = sample.members.get(member)
        if data is None:
            ctx[what], ctx[f"{what}_fit"] = None, None
            continue
        try:
            rgb = load_photo(data, f"{item.key}.{member}", cfg.max_photo_pixels)
        except PhotoError as exc:
            raise SampleError(f"load_{what}", str(exc), f"{root}/{item.key}.{member}") from exc
        ctx[what], ctx[f"{what}_fit"] = fit_to_canvas(rgb, tuple(cfg.size), cfg.fit)
    ctx["image"], ctx["fit"] = ctx.pop("person"), ctx.pop("person_fit")
    cloth = f"{root}/{item.key}.cloth.jpg" if ctx["cloth"] is not None else None
    pair = meta.get("pair") or ("person_only" if cloth is None else "paired")
    ctx["item"] = RawItem(item.key, f"{root}/{item.key}.image.jpg", cloth, pair, root)
    return ctx


def _carry_over(old: Sample, new: Sample, item: ShardItem) -> Sample:
    """Keep the stored photos byte for byte (re-encoding a JPEG loses quality), the members the pipeline does not
    make, and the provenance of the input sample; the maps and their producers are the new ones."""
    from vitonprep import codecs

    members = {**old.members, **new.members}
    for photo in ("image.jpg", "cloth.jpg"):
        if photo in old.members:
            members[photo] = old.members[photo]
    old_meta = json.loads(old.members.get("meta.json", b"{}"))
    meta = json.loads(new.members["meta.json"])
    for k in ("person_file", "cloth_file", "person_id", "cloth_id", "pair", "original_size", "fit", "source"):
        if k in old_meta:
            meta[k] = old_meta[k]
    meta["producers"] = {**old_meta.get("producers", {}), **meta["producers"]}
    meta["rebuilt_from"] = {"dataset": item.source, "shard": shard_name(item.shard)}
    members["meta.json"] = codecs.encode_json(meta)
    return Sample(new.key, members)


# ---------------------------------------------------------------- driver

def _plan_fingerprint(cfg: PipelineConfig) -> dict[str, Any]:
    """The pipeline as it shapes the output: stage resources say where stages run and ``weights_dir`` where weight
    files are found, not what they make, so a build may resume on another cluster layout or machine."""
    d = json.loads(json.dumps(cfg.to_dict(), default=str))
    d.pop("weights_dir", None)
    for choice in d["stages"].values():
        choice.pop("resources", None)
    return d


def _check_plan(out: Location, cfg: PipelineConfig, keys: list[str], source: str) -> None:
    current = {"pipeline": _plan_fingerprint(cfg), "items": keys}
    if source:
        current["input_shards"] = source
    previous = read_json(out, "_plan.json")
    if previous is not None:
        if previous != current:
            raise ConfigError(f"{out} holds shards of a different build (other inputs or pipeline); "
                              "use an empty output folder or --overwrite")
    else:
        write_json(out, "_plan.json", current)


def build_dataset(cfg: PipelineConfig, raw: Location, out: Location, options: BuildOptions = BuildOptions(),
                  progress: ProgressCallback | None = None) -> BuildReport:
    """Library twin of `vitonprep build`. Raises ConfigError before any image is touched if the pipeline, the
    input or the distributor is wrong."""
    from vitonprep.stages import Pipeline

    t0 = time.perf_counter()
    if options.distributor not in ("local", "ray"):
        raise ConfigError(f"distributor: {options.distributor!r} is not one of local, ray")
    if options.distributor == "ray":
        from vitonprep.distribute import import_ray

        import_ray()  # fail now, with the install hint, rather than after planning
    if options.distributor == "local" and (options.workers or 1) > 1:
        start_pool_server()  # the workers' imports run while this process plans
    Pipeline.from_config(cfg)  # resolves every back-end name and parameter now, not in a worker
    if is_shard_dataset(raw):
        shard_plan = plan_shards(raw)
        tasks = [ShardTask(idx, out, items) for idx, items in shard_plan]
        keys = [i.key for _, items in shard_plan for i in items]
        info = {"source_dataset": "vitonprep shards", "input": str(raw), "layout": "shards"}
        unused: tuple[str, ...] = ()
        skipped: tuple[Failure, ...] = ()
        source = str(raw)
    else:
        if is_url(raw):
            raise ConfigError(f"{raw}: remote inputs must be vitonprep shards (no finished shard found there)")
        plan = plan_raw(Path(raw), options.pairs_file)
        tasks = [ShardTask(i, out, items) for i, items in enumerate(chunk(list(plan.items), cfg.samples_per_shard))]
        keys = [i.key for i in plan.items]
        info = {"source_dataset": "raw photos", "input": str(raw), "layout": plan.layout}
        unused, skipped, source = plan.unused_garments, plan.skipped, ""
    with output_lock(out):  # one build at a time into OUT (the CLI already holds it; nesting is free)
        _check_plan(out, cfg, keys, source)
        if options.distributor == "ray":
            from vitonprep.distribute.ray_build import run_build_on_ray

            results = run_build_on_ray(cfg, tasks, options, progress)
        else:
            results = run_shard_tasks(tasks, partial(_build_shard, cfg), workers=options.workers or 1,
                                      progress=progress, max_shard_retry=options.max_shard_retry)
        stage_seconds: dict[str, float] = {}
        for r in results:
            if not r.error:
                for k, v in read_stats(out, r.index).get("stage_seconds", {}).items():
                    stage_seconds[k] = stage_seconds.get(k, 0.0) + v
        write_manifest(out, cfg.name, {**info, "pipeline": cfg.to_dict(), "unused_garments": list(unused),
                                       "skipped_inputs": [f.to_dict() for f in skipped]})
        write_json(out, "_config.json", cfg.to_dict())
    return BuildReport(
        nsamples=sum(r.nsamples for r in results), nplanned=len(keys), nshards=len(results),
        skipped_shards=sum(r.skipped for r in results),
        failures=list(skipped) + [f for r in results for f in r.failures],
        seconds=time.perf_counter() - t0, stage_seconds=stage_seconds, unused_garments=unused,
        failed_shards={r.index: r.error for r in results if r.error},
    )
