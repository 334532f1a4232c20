"""What `inspect` knows about every sample before drawing any: key, pair, category, producers and the meta.json
``quality`` field, read from shards that are untrusted, then the order in which samples are shown.

A sample is never held in memory beyond its record: the drawing passes read the shards again and keep only the
samples they draw (``iter_selected``), so paging through a large dataset costs one record per sample.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import tarfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from vitonprep import codecs
from vitonprep.errors import ConfigError
from vitonprep.quality.config import QualityConfig, quality_config_from_mapping
from vitonprep.quality.thresholds import THRESHOLDS
from vitonprep.quality.thresholds import margin as threshold_margin
from vitonprep.shards import Sample, iter_tar_samples, list_shards
from vitonprep.validate.quality_field import read_quality as read_quality_field

logger = logging.getLogger(__name__)

#: the maps whose back-end the report filters by (meta.json ``producers``)
PRODUCER_FIELDS = ("parse", "pose", "image_densepose")


def text(value: Any, limit: int = 200) -> str:
    """Shard data as printable ASCII (the sheet's fonts and the console alike), cut to ``limit`` characters."""
    out = value if isinstance(value, str) else repr(value)
    return "".join(c if " " <= c <= "~" else "?" for c in out)[:limit]


@dataclass(frozen=True)
class Quality:
    """The meta.json ``quality`` field once checked: flags as (check, reason) and finite scores."""

    flags: tuple[tuple[str, str], ...]
    scores: dict[str, float]


def read_quality(meta: dict[str, Any]) -> tuple[Quality | None, str | None]:
    """(quality, problem): (None, None) for a sample never checked (no field), (None, why) for a field of the wrong
    shape (counted as unchecked, reported as a problem), else the parsed field (problem None). The shape rules are
    validate's (``vitonprep.validate.quality_field``), so inspect and validate agree on every field."""
    state = read_quality_field(meta)
    if state.state == "unchecked":
        return None, None
    if state.state == "malformed":
        return None, f"{state.problem} (counted as unchecked)"
    scores = meta["quality"]["scores"]  # the reader checked it: an object of finite numbers
    return Quality(state.flags, {str(k): float(v) for k, v in scores.items()}), None


@dataclass
class SampleRecord:
    """One sample as listed: where it is (shard file name, position in the shard) and what meta.json says."""

    shard: str
    ordinal: int
    key: str
    category: str = "?"
    split: str = "?"
    pair: str = "?"
    #: map -> back-end name (printable), for the maps of PRODUCER_FIELDS and the others alike
    producers: dict[str, str] = field(default_factory=dict)
    approximate: list[str] = field(default_factory=list)
    quality: Quality | None = None
    #: smallest threshold margin of its scores (negative = flagged), None when unknown
    margin: float | None = None
    #: the check that margin belongs to
    closest: str | None = None

    @property
    def status(self) -> str:
        if self.quality is None:
            return "unchecked"
        return "flagged" if self.quality.flags else "passed"


@dataclass
class InspectSummary:
    nsamples: int = 0
    keys: list[str] = field(default_factory=list)
    producers: Counter = field(default_factory=Counter)  # (field, backend, approximate) -> count
    categories: Counter = field(default_factory=Counter)
    pairs: Counter = field(default_factory=Counter)
    sizes: Counter = field(default_factory=Counter)
    #: flagged samples per check, and samples whose meta.json has no (usable) quality field
    flag_counts: Counter = field(default_factory=Counter)
    flagged: int = 0
    passed: int = 0
    unchecked: int = 0
    #: (shard, key or None, reason) for everything that could not be read or is not sound in a drawn sample
    problems: list[tuple[str, str | None, str]] = field(default_factory=list)
    #: every sample in the order shown (flagged first), filled by :func:`collect`
    records: list[SampleRecord] = field(default_factory=list)
    #: sheet files written (``--all``: one per page) -> keys on them
    pages: list[tuple[Path, list[str]]] = field(default_factory=list)


def _meta(sample: Sample, shard: str, summary: InspectSummary) -> dict[str, Any]:
    try:
        meta = codecs.decode_json(sample.members.get("meta.json", b"{}"), f"{sample.key}.meta.json")
    except codecs.DecodeError as exc:
        summary.problems.append((shard, sample.key, str(exc)))
        return {}
    if not isinstance(meta, dict):
        summary.problems.append((shard, sample.key, "meta.json is not an object"))
        return {}
    return meta


def _record(summary: InspectSummary, rec: SampleRecord, meta: dict[str, Any]) -> None:
    rec.category, rec.split, rec.pair = text(meta.get("category")), text(meta.get("split")), text(meta.get("pair"))
    summary.categories[rec.category] += 1
    summary.pairs[f"{rec.split}/{rec.pair}"] += 1
    size = meta.get("size")
    plain = isinstance(size, list) and all(isinstance(v, int) for v in size)
    summary.sizes[tuple(size) if plain else text(size)] += 1
    producers = meta.get("producers")
    for fname, prod in (producers.items() if isinstance(producers, dict) else ()):
        if isinstance(prod, dict):
            backend, approx = text(prod.get("backend")), bool(prod.get("approximate"))
            summary.producers[(text(fname), backend, approx)] += 1
            rec.producers[text(fname)] = backend
            if approx:
                rec.approximate.append(text(fname))
    rec.quality, problem = read_quality(meta)
    if problem:
        summary.problems.append((rec.shard, rec.key, problem))
    if rec.quality is None:
        summary.unchecked += 1
    elif rec.quality.flags:
        summary.flagged += 1
        summary.flag_counts.update({text(check) for check, _ in rec.quality.flags})
    else:
        summary.passed += 1


#: (check, score) -> margin to its threshold relative to it (negative = flagged), or None when unknown
MarginFn = Callable[[str, float], "float | None"]


def order_records(records: list[SampleRecord], margin: MarginFn | None = None) -> list[SampleRecord]:
    """Flagged samples first (most flags first), then the worst-scored (smallest margin to a threshold), then the
    rest (unchecked ones last), each group in dataset order. Fills ``record.margin`` and ``record.closest``."""
    for rec in records:
        known = [(m, c) for c, s in rec.quality.scores.items() if (m := margin(c, s)) is not None
                 and math.isfinite(m)] if margin is not None and rec.quality is not None else []
        rec.margin, rec.closest = min(known) if known else (None, None)

    def rank(item: tuple[int, SampleRecord]) -> tuple:
        i, rec = item
        nflags = len(rec.quality.flags) if rec.quality is not None else 0
        group = 0 if nflags else 1 if rec.margin is not None else 2 if rec.quality is not None else 3
        return group, -nflags, rec.margin if rec.margin is not None else 0.0, i

    return [rec for _, rec in sorted(enumerate(records), key=rank)]


def built_thresholds(shard_dir: Path) -> QualityConfig:
    """The thresholds the shards' quality fields were written with (manifest.json): those of a ``vitonprep quality
    --annotate`` run (``vitonprep.quality_annotated.config``) when the manifest has one, since an annotated copy
    carries its input's build settings too; else the build's (``vitonprep.pipeline.quality``). The defaults when
    the manifest has none or they do not parse: the manifest is untrusted too, so nothing in it is an error."""
    try:
        manifest = json.loads((shard_dir / "manifest.json").read_bytes())
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):  # missing, not JSON, nested too deep
        return QualityConfig()
    own = manifest.get("vitonprep") if isinstance(manifest, dict) else None
    own = own if isinstance(own, dict) else {}
    if "quality_annotated" in own:
        annotated = own["quality_annotated"]
        where = "vitonprep.quality_annotated.config"
        section = annotated.get("config") if isinstance(annotated, dict) else annotated
    else:
        pipeline = own.get("pipeline")
        where = "vitonprep.pipeline.quality"
        section = pipeline.get("quality") if isinstance(pipeline, dict) else None
    if section is None:
        return QualityConfig()
    try:
        config = quality_config_from_mapping(section, where)
        for f in dataclasses.fields(config):  # an int setting may be 400 digits long: margins divide by it
            value = getattr(config, f.name)
            try:
                finite = isinstance(value, bool) or math.isfinite(value)
            except OverflowError:
                finite = False
            if not finite:
                raise ValueError(f"{where}.{f.name} is too large for a float")
    except (ConfigError, ValueError, TypeError, OverflowError) as exc:
        logger.warning("%s: quality thresholds in manifest.json not used (%s); ordering by the defaults",
                       shard_dir, str(exc)[:300])
        return QualityConfig()
    return config


def margin_for(config: QualityConfig) -> MarginFn:
    """How far a score is from its threshold under ``config`` (quality.thresholds; None for an unknown check).
    ``config`` holds finite numbers only (:func:`built_thresholds` checks the manifest's)."""
    return lambda check, score: threshold_margin(check, score, config) if check in THRESHOLDS else None


def collect(shard_dir: Path, margin: MarginFn | None = None) -> InspectSummary:
    """One pass over every shard: a record per sample (ordered, in ``summary.records``), counts and problems.

    ``margin`` ranks the unflagged samples (worst-scored first); by default the thresholds the shards were built
    with."""
    margin = margin_for(built_thresholds(shard_dir)) if margin is None else margin
    summary = InspectSummary()
    records: list[SampleRecord] = []
    for tar_path in list_shards(shard_dir):
        count = 0
        try:
            for sample in iter_tar_samples(tar_path):
                rec = SampleRecord(tar_path.name, count, sample.key)
                count += 1
                summary.nsamples += 1
                summary.keys.append(sample.key)
                _record(summary, rec, _meta(sample, tar_path.name, summary))
                records.append(rec)
        except (tarfile.TarError, EOFError, OSError) as exc:
            summary.problems.append((tar_path.name, None,
                                     f"{tar_path.name} is truncated or corrupt after {count} samples: {exc}"))
    summary.records = order_records(records, margin)
    return summary


def iter_selected(shard_dir: Path, wanted: list[SampleRecord]) -> Iterator[tuple[SampleRecord, Sample]]:
    """The samples of ``wanted`` (records from :func:`collect`), read again from their shards, in shard order.

    Read errors were reported by ``collect``; here they end that shard's reading quietly."""
    by_shard: dict[str, dict[int, SampleRecord]] = {}
    for rec in wanted:
        by_shard.setdefault(rec.shard, {})[rec.ordinal] = rec
    for tar_path in list_shards(shard_dir):
        todo = by_shard.get(tar_path.name)
        if not todo:
            continue
        try:
            for ordinal, sample in enumerate(iter_tar_samples(tar_path)):
                if ordinal in todo:
                    yield todo.pop(ordinal), sample
                    if not todo:
                        break
        except (tarfile.TarError, EOFError, OSError):
            continue

