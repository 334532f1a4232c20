"""Rebuild from shards: a build whose input is a folder (or URL) of vitonprep shards.

Output shard i is input shard i with the pipeline's stages re-run on its stored person and garment photos: the
pipeline's load stage is replaced by `StoredPhotoLoad` (the photos come from the input sample, not from files),
every other stage runs as in a raw build, and `CarryOverStage`, right after the encode stage, keeps the stored
photos byte for byte, the members the pipeline does not make and the input sample's provenance (`carry_over`).
The quality stage comes after it, so it judges the sample as written; the input's own ``quality`` is never kept.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vitonprep import codecs
from vitonprep.config import PipelineConfig
from vitonprep.errors import ConfigError, SampleError
from vitonprep.photos import Fit, PhotoError, canvas_fit, fit_to_canvas, load_photo
from vitonprep.raw import RawItem
from vitonprep.sample_meta import carry_over_meta
from vitonprep.schema import PAIRINGS, check_key
from vitonprep.shards import (
    Location,
    Sample,
    ShardStore,
    completed_shards,
    is_url,
    iter_tar_samples,
    read_stats,
    shard_name,
    stats_name,
)
from vitonprep.stages import EncodeStage, LoadStage, SampleContext, Stage

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShardItem:
    """One sample of an input shard (shard-to-shard builds)."""

    key: str
    source: str  # input dataset location (local folder or fsspec URL)
    shard: int


def is_shard_dataset(location: Location) -> bool:
    """A folder (or URL) holding finished vitonprep shards, as opposed to raw photos."""
    if not is_url(location) and not Path(location).is_dir():
        return False
    return bool(completed_shards(location))


def plan_shards(location: Location) -> list[tuple[int, tuple[ShardItem, ...]]]:
    """Input shard index -> its samples, from the stats files (the tars are read by the workers, not here)."""
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


def read_input_shard(items: Sequence[ShardItem]) -> dict[str, Sample]:
    """The samples of the one input shard ``items`` come from, by key."""
    shards = {(i.source, i.shard) for i in items}
    if len(shards) != 1:
        raise ValueError(f"a task must read exactly one input shard, got {sorted(shards)}")
    source, idx = shards.pop()
    with ShardStore(source).open_read(shard_name(idx)) as fh:
        return {s.key: s for s in iter_tar_samples(fh)}


def input_meta(sample: Sample, where: str) -> dict[str, Any]:
    """The input sample's meta.json (untrusted): a JSON object whose ``producers`` is an object, else this sample's
    SampleError (the rest of its shard is rebuilt)."""
    try:
        meta = json.loads(sample.members.get("meta.json", b"{}"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SampleError("load_person", f"input meta.json is not JSON ({exc})", where) from exc
    if not isinstance(meta, dict) or not isinstance(meta.get("producers", {}), dict):
        raise SampleError("load_person", "input meta.json is not a vitonprep meta record (an object with an object "
                          "of producers)", where)
    return meta


def _number_in(value: Any, lo: float, hi: float) -> bool:
    # the range test first: it is False for NaN and never overflows on a huge int, as float() or isfinite would
    return isinstance(value, (int, float)) and not isinstance(value, bool) and lo <= value <= hi


def stored_fit(meta: dict[str, Any], size: tuple[int, int]) -> Fit | None:
    """How the input sample's person photo was fitted to its ``size`` (w, h) canvas, from its (untrusted) meta.json
    ``fit.person``; None when absent, malformed, or not the fit `fit_to_canvas` makes for its mode and original size
    on this canvas (an offset off the canvas would give a rectangle outside it). A rebuild reads the stored canvas,
    whose own fit is the identity: without this the pad bands of a ``fit: pad`` photo would count as photo again
    (PhotoRect: joints, labels and cut-off sides)."""
    fit = meta.get("fit")
    person = fit.get("person") if isinstance(fit, dict) else None
    if not isinstance(person, dict):
        return None
    mode, scale, offset, original = (person.get(k) for k in ("mode", "scale", "offset", "original_size"))
    if (mode not in ("pad", "crop") or not _number_in(scale, 1e-6, 1e4)
            or not (isinstance(offset, list) and len(offset) == 2 and all(_number_in(v, -1e6, 1e6) for v in offset))
            or not (isinstance(original, list) and len(original) == 2
                    and all(isinstance(v, int) and _number_in(v, 1, 1e6) for v in original))):
        return None
    expected = canvas_fit((int(original[0]), int(original[1])), size, mode)
    if abs(float(scale) - expected.scale) > 1e-9 * expected.scale or tuple(map(float, offset)) != expected.offset:
        return None
    return expected


class StoredPhotoLoad(Stage):
    """The load stage of a rebuild: what `LoadStage` makes from files, made from the photos stored in the input
    sample (``inputs``: the samples of the task's input shard, set by the worker before each task). It also turns
    the context's `ShardItem` into the `RawItem` the later stages and the encoder read."""

    name, reads, writes = LoadStage.name, LoadStage.reads, LoadStage.writes

    def __init__(self, cfg: PipelineConfig):
        self.cfg = cfg
        self.inputs: dict[str, Sample] = {}
        self.items: dict[str, ShardItem] = {}

    def start(self, items: Sequence[ShardItem]) -> None:
        """Read the input shard of a task's ``items`` (one input shard per task)."""
        self.inputs = read_input_shard(items)
        self.items = {i.key: i for i in items}

    def finish(self) -> None:
        self.inputs, self.items = {}, {}

    def __call__(self, ctx: SampleContext) -> None:
        item: ShardItem = ctx.item
        sample = self.inputs.get(item.key)
        if sample is None or "image.jpg" not in sample.members:
            raise SampleError("load_person", "input sample has no image.jpg", f"{item.source}:{item.key}")
        root = f"{item.source}/{shard_name(item.shard)}"
        meta = input_meta(sample, f"{root}/{item.key}.meta.json")
        ctx.image, ctx.fit = self._load(sample, "image.jpg", "person", root)
        recorded = stored_fit(meta, (self.cfg.size[0], self.cfg.size[1]))
        if recorded is not None:
            ctx.fit = recorded  # where the photo lies on the stored canvas (the output meta carries it over too)
        elif "fit" in meta:
            logger.warning("%s/%s.meta.json: fit.person is malformed; the whole stored canvas is taken as the photo",
                           root, item.key)
        ctx.cloth, ctx.cloth_fit = self._load(sample, "cloth.jpg", "cloth", root)
        ctx.image_jpeg = ctx.cloth_jpeg = None  # encoded anew; `carry_over` puts the stored bytes back
        cloth = f"{root}/{item.key}.cloth.jpg" if ctx.cloth is not None else None
        pair = meta.get("pair") if meta.get("pair") in PAIRINGS else ("person_only" if cloth is None else "paired")
        ctx.item = RawItem(item.key, f"{root}/{item.key}.image.jpg", cloth, pair, root)

    def _load(self, sample: Sample, member: str, what: str, root: str) -> tuple[np.ndarray | None, Fit | None]:
        """(canvas RGB, fit) of a stored photo; (None, None) when the sample has none."""
        data = sample.members.get(member)
        if data is None:
            return None, None
        try:
            rgb = load_photo(data, f"{sample.key}.{member}", self.cfg.max_photo_pixels)
        except PhotoError as exc:
            raise SampleError(f"load_{what}", str(exc), f"{root}/{sample.key}.{member}") from exc
        stored, wanted = (rgb.shape[1], rgb.shape[0]), tuple(self.cfg.size)
        if stored != wanted:  # `carry_over` keeps the stored bytes: they must be the canvas the maps are made on
            raise SampleError(f"load_{what}", f"stored photo is {stored[0]}x{stored[1]} but this pipeline makes "
                              f"{wanted[0]}x{wanted[1]} maps, and a rebuild keeps the stored photos as they are",
                              f"{root}/{sample.key}.{member}")
        return fit_to_canvas(rgb, wanted, self.cfg.fit)


class CarryOverStage(Stage):
    """After the encode stage of a rebuild: the encoded sample becomes `carry_over` of the input sample the loader
    read for it (photos, members the pipeline does not make, provenance)."""

    name, reads, writes = "carry_over", ("sample",), ("sample",)

    def __init__(self, loader: StoredPhotoLoad):
        self.loader = loader

    def __call__(self, ctx: SampleContext) -> None:
        key = ctx.sample.key
        ctx.sample = carry_over(self.loader.inputs[key], ctx.sample, self.loader.items[key])


def rebuild_stages(loader: StoredPhotoLoad, stages: Sequence[Stage]) -> list[Stage]:
    """A build's stages for a rebuild: ``loader`` in place of the load stage, `CarryOverStage` after encode."""
    out: list[Stage] = [loader]
    for stage in stages[1:]:
        out.append(stage)
        if isinstance(stage, EncodeStage):
            out.append(CarryOverStage(loader))
    return out


def carry_over(old: Sample, new: Sample, item: ShardItem) -> Sample:
    """Keep the stored photos byte for byte (re-encoding a JPEG loses quality), the members the pipeline does not
    make, and the provenance of the input sample; the maps and their producers are the new ones."""
    members = {**old.members, **new.members}
    for photo in ("image.jpg", "cloth.jpg"):
        if photo in old.members:
            members[photo] = old.members[photo]
    old_meta = input_meta(old, f"{item.source}/{shard_name(item.shard)}/{old.key}.meta.json")
    meta = carry_over_meta(old_meta, json.loads(new.members["meta.json"]),
                           {"dataset": item.source, "shard": shard_name(item.shard)})
    members["meta.json"] = codecs.encode_json(meta)
    return Sample(new.key, members)
