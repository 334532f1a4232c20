"""Shared driver for `vitonprep convert`: plan samples, shard them, run in parallel, write the manifest."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence

from vitonprep.errors import ConfigError, SampleError
from vitonprep.runner import ProgressCallback, ShardTask, chunk, run_shard_tasks
from vitonprep.shards import Failure, Sample, ShardResult, write_manifest, write_shard

logger = logging.getLogger(__name__)

DATASETS = ("vitonhd", "dresscode")


@dataclass(frozen=True)
class ConvertConfig:
    """Resolved once at the CLI; everything below it receives this object."""

    dataset: str  # "vitonhd" | "dresscode"
    source: Path
    out: Path
    samples_per_shard: int = 100
    workers: int = 1
    #: used when ``source`` is a single split folder (image/, cloth/, ... directly inside)
    default_split: str = "test"
    #: restrict to these DressCode categories (empty = all found)
    categories: tuple[str, ...] = ()
    #: DressCode mask recipe when agnostic masks are derived: "dc" (DressCode style) or "hd" (IDM-VTON style)
    name: str = ""

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ConfigError(f"unknown dataset {self.dataset!r}; choose one of {DATASETS}")
        if self.samples_per_shard < 1:
            raise ConfigError("samples_per_shard must be >= 1")
        if self.workers < 1:
            raise ConfigError("workers must be >= 1")


@dataclass
class PlannedSample:
    """Everything a worker needs to make one sample; plain data so it pickles to worker processes."""

    key: str
    split: str
    pair: str
    category: str
    person_id: str
    cloth_id: str
    files: dict[str, str]  # role -> absolute path
    root: str


@dataclass
class ConvertReport:
    nsamples: int
    nshards: int
    failures: list[Failure]
    seconds: float
    skipped_shards: int
    pairs: dict[str, list[str]] = field(default_factory=dict)
    failed_shards: dict[int, str] = field(default_factory=dict)  # shard -> error, after the retries ran out


def put_garment(b, item: "PlannedSample", given, mask_producer) -> None:
    """Garment photo (passed through when it already is a 768x1024 RGB JPEG) and its mask: the folder's own
    mask thresholded at 128 (``mask_producer``), else the OpenCV back-end."""
    from vitonprep import codecs
    from vitonprep.assemble import jpeg_passthrough, read_mask_any, read_rgb
    from vitonprep.schema import PERSON_SIZE

    path = item.files["cloth"]
    data = Path(path).read_bytes()
    cloth = decode_or_fail(read_rgb, data, path, "cloth")
    if (cloth.shape[1], cloth.shape[0]) != PERSON_SIZE:
        raise SampleError("cloth", f"size {cloth.shape[1]}x{cloth.shape[0]}, expected "
                          f"{PERSON_SIZE[0]}x{PERSON_SIZE[1]}", path)
    b.put("cloth", jpeg_passthrough(data, PERSON_SIZE) or codecs.encode_jpeg(cloth), given)
    if "cloth_mask" in item.files:
        mpath = item.files["cloth_mask"]
        mask = read_mask_any(Path(mpath).read_bytes(), mpath)
        check_same_size(mask, cloth, mpath, "cloth_mask")
        b.put_array("cloth_mask", mask, mask_producer)
    else:
        from vitonprep.assemble import Producer
        from vitonprep.backends import cloth_mask_opencv

        try:
            mask = cloth_mask_opencv.cloth_mask(cloth)
        except ValueError as exc:
            raise SampleError("cloth_mask", str(exc), path) from exc
        b.put_array("cloth_mask", mask, Producer(cloth_mask_opencv.NAME, note="the source has no mask for it"))


def sample_meta(item: "PlannedSample", image_shape: tuple[int, ...], dataset: str, licence: str) -> dict[str, Any]:
    from vitonprep.schema import PERSON_SIZE

    root = Path(item.root)
    return {
        "person_file": str(Path(item.files["image"]).relative_to(root)),
        "cloth_file": str(Path(item.files["cloth"]).relative_to(root)),
        "person_id": item.person_id,
        "cloth_id": item.cloth_id,
        "pair": item.pair,
        "split": item.split,
        "category": item.category,
        "size": list(PERSON_SIZE),
        "original_size": [image_shape[1], image_shape[0]],
        "source": {"dataset": dataset, "licence": licence},
    }


def decode_or_fail(fn, data: bytes, path: str, stage: str):
    """Run decoder ``fn(data, path)``; any decoding problem becomes SampleError(stage) naming the file."""
    from PIL import Image

    from vitonprep import codecs

    try:
        return fn(data, path)
    except codecs.DecodeError as exc:
        raise SampleError(stage, str(exc), path) from exc
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise SampleError(stage, f"cannot decode: {exc}", path) from exc


def check_same_size(arr, image, path: str, stage: str) -> None:
    if arr.shape[:2] != image.shape[:2]:
        raise SampleError(stage, f"size {arr.shape[1]}x{arr.shape[0]} differs from the person image "
                          f"{image.shape[1]}x{image.shape[0]}", path)


def _work(make: Callable[[PlannedSample], Sample], task: ShardTask) -> ShardResult:
    samples, failures = [], []
    for item in task.items:
        if isinstance(item, Failure):  # planning already knew this one cannot be made
            failures.append(item)
            continue
        try:
            samples.append(make(item))
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
    from vitonprep.outdir import output_lock

    t0 = time.perf_counter()
    cfg.out.mkdir(parents=True, exist_ok=True)
    with output_lock(cfg.out):  # one writer at a time (the CLI already holds it; nesting is free)
        _check_same_plan(cfg, planned)
        tasks = [ShardTask(i, cfg.out, items) for i, items in enumerate(chunk(list(planned), cfg.samples_per_shard))]
        results = run_shard_tasks(tasks, partial(_work, make), workers=cfg.workers, progress=progress)
        pairs = _pair_lists(planned, results, cfg.out)
        manifest_info = {**info, "pairs": pairs, "config": _jsonable(asdict(cfg))}
        write_manifest(cfg.out, cfg.name or cfg.source.name, manifest_info)
    failures = [f for r in results for f in r.failures]
    return ConvertReport(
        nsamples=sum(r.nsamples for r in results),
        nshards=len(results),
        failures=failures,
        seconds=time.perf_counter() - t0,
        skipped_shards=sum(r.skipped for r in results),
        pairs=pairs,
        failed_shards={r.index: r.error for r in results if r.error},
    )


def _plan_fingerprint(planned: Sequence[PlannedSample | Failure]) -> list[str]:
    return [p.key if isinstance(p, PlannedSample) else f"!{p.source}" for p in planned]


def _check_same_plan(cfg: ConvertConfig, planned: Sequence[PlannedSample | Failure]) -> None:
    """Resuming into a folder planned differently would mix shards of two plans: refuse it."""
    plan_file = cfg.out / "_plan.json"
    current = {"samples_per_shard": cfg.samples_per_shard, "items": _plan_fingerprint(planned)}
    if plan_file.is_file():
        previous = json.loads(plan_file.read_text())
        if previous != current:
            raise ConfigError(
                f"{cfg.out} holds shards of a different plan (other inputs or samples_per_shard); "
                "use an empty output folder or --overwrite"
            )
    else:
        plan_file.write_text(json.dumps(current))


def _pair_lists(planned, results, out: Path) -> dict[str, list[str]]:
    """Pair lists per split/pairing, of the samples that really reached the shards (VITON-HD line format)."""
    from vitonprep.shards import read_stats

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
    if cfg.dataset == "vitonhd":
        from vitonprep.convert import vitonhd as mod
    else:
        from vitonprep.convert import dresscode as mod
    planned, info = mod.plan(cfg)
    if not any(isinstance(p, PlannedSample) for p in planned):
        raise ConfigError(f"no samples found in {cfg.source} for a {cfg.dataset} layout ({mod.LAYOUT_HINT})")
    return run_conversion(cfg, planned, mod.make_sample, info, progress)
