"""The quality checks over existing shards (after ``convert``, on old builds): decode each sample with the
trainer's decoders and check it; ``annotate_shards`` writes a copy whose meta.json carry the result.

An annotated copy is the input with each meta.json gaining ``quality`` (an old one replaced) and every other
member byte for byte the same; tars, stats files and manifest.json are written by the shard writer
(vitonprep/shards.py), so the copy validates and the trainer's ``data.skip_flagged`` reads it. The input is only
read: it must be sound (validate's checks, shard and sample level), a copy must not launder a damaged or altered
shard into fresh checksums.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from vitonprep import codecs
from vitonprep.errors import ConfigError, VitonprepError
from vitonprep.outdir import LOCK_NAME, clear_output, output_lock, refuse_overlap
from vitonprep.quality.config import QualityConfig
from vitonprep.quality.garment import GarmentFaces
from vitonprep.quality.report import QualityReport
from vitonprep.quality.sample import check_sample
from vitonprep.sample_meta import with_quality
from vitonprep.schema import FIELDS_BY_MEMBER
from vitonprep.shards import Failure, Sample, iter_tar_samples, list_shards, write_manifest, write_shard
from vitonprep.validate import checked_samples, read_listing
from vitonprep.validate.quality_field import QUALITY_KEY

__all__ = ["AnnotateError", "ShardsQuality", "annotate_shards", "check_shards", "decode_sample"]

logger = logging.getLogger(__name__)


@dataclass
class ShardsQuality:
    """Per-sample reports (shard, key, report) and the samples that could not be decoded (shard, key, why)."""

    results: list[tuple[str, str, QualityReport]] = field(default_factory=list)
    undecodable: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def flagged(self) -> list[tuple[str, str, QualityReport]]:
        return [r for r in self.results if r[2].flags]

    def counts_by_check(self) -> dict[str, int]:
        """Flagged samples per check."""
        counts: Counter[str] = Counter()
        for _, _, rep in self.results:
            counts.update({f.check for f in rep.flags})
        return dict(sorted(counts.items()))

    def to_dict(self) -> dict[str, Any]:
        return {"samples": len(self.results), "flagged": len(self.flagged), "counts": self.counts_by_check(),
                "undecodable": [{"shard": s, "key": k, "reason": r} for s, k, r in self.undecodable],
                "results": [{"shard": s, "key": k, "quality": rep.to_dict()} for s, k, rep in self.results]}


def decode_sample(members: dict[str, bytes], key: str) -> dict[str, Any]:
    """Decode the contract's members (unknown ones are skipped); raises codecs.DecodeError."""
    out: dict[str, Any] = {}
    for suffix, data in members.items():
        f = FIELDS_BY_MEMBER.get(suffix)
        if f is not None:
            out[f.name] = codecs.decode_field(f, data, key)
    return out


def check_shards(shard_dir: Path, config: QualityConfig | None = None,
                 progress: Callable[[str, int], None] | None = None) -> ShardsQuality:
    """Check every sample of every ``*.tar`` in ``shard_dir``; a sample that does not decode is listed, not judged."""
    config = QualityConfig() if config is None else config
    result = ShardsQuality()
    faces = GarmentFaces() if config.detect_garment_faces else None
    try:
        for tar in list_shards(Path(shard_dir)):
            for sample in iter_tar_samples(tar):
                try:
                    decoded = decode_sample(sample.members, sample.key)
                except codecs.DecodeError as exc:
                    result.undecodable.append((tar.name, sample.key, str(exc)))
                    continue
                try:
                    report = check_sample(decoded, config, faces)
                except Exception as exc:  # noqa: BLE001 - one odd sample must not end the run over the others
                    logger.warning("%s %s: could not be checked: %s", tar.name, sample.key, exc)
                    result.undecodable.append((tar.name, sample.key, f"could not be checked: {exc}"))
                    continue
                result.results.append((tar.name, sample.key, report))
                if progress is not None:
                    progress(sample.key, 1)
    finally:
        if faces is not None:
            faces.close()
    return result


class AnnotateError(VitonprepError):
    """The input shards cannot be annotated (damaged, altered, not vitonprep shards); the message names the shard."""


_SHARD_NAME = re.compile(r"\d{5}\.tar")


def annotate_shards(shard_dir: Path, out: Path, config: QualityConfig | None = None,
                    progress: Callable[[str, int], None] | None = None, overwrite: bool = False) -> ShardsQuality:
    """Library twin of `vitonprep quality SHARDS --annotate OUT`: check every sample and write the shards again
    into the new folder ``out``, each meta.json with its ``quality`` (the rest byte-identical).

    ConfigError before anything is written when ``out`` equals, contains or lies in ``shard_dir``, or already
    holds files (``overwrite``: cleared first if it holds vitonprep output); AnnotateError when an input shard
    is not sound (what validate reports as an error), naming it. ``out`` is locked while it is written.
    """
    shard_dir, out = Path(shard_dir), Path(out)
    config = QualityConfig() if config is None else config
    refuse_overlap("OUT", out, {"SHARDS": shard_dir}, overwrite)
    tars = list_shards(shard_dir)
    if not tars:
        raise ConfigError(f"no .tar shards in {shard_dir}")
    odd = [t.name for t in tars if not _SHARD_NAME.fullmatch(t.name)]
    if odd:
        raise ConfigError(f"{shard_dir / odd[0]}: not a vitonprep shard name (NNNNN.tar); only vitonprep shards "
                          "can be annotated")
    manifest, listed, problem = read_listing(shard_dir)
    if problem and manifest is not None:
        raise AnnotateError(f"{shard_dir}: {problem}")
    with output_lock(out):
        if overwrite:
            clear_output(out)
        elif any(p.name != LOCK_NAME for p in out.iterdir()):
            raise ConfigError(f"{out} is not empty: --annotate writes a new folder (or --overwrite to replace "
                              "vitonprep output there)")
        result = ShardsQuality()
        faces = GarmentFaces() if config.detect_garment_faces else None
        written = False
        try:
            for tar in tars:
                first = len(result.results)
                samples = [_annotated(sample, tar.name, config, faces, result, progress)
                           for sample in _sound_samples(tar, listed.get(tar.name), manifest is not None)]
                write_shard(out, int(tar.stem), samples, _failures(tar),
                            {"quality": _stats_counts(result.results[first:])})
                written = True
            write_manifest(out, _manifest_name(manifest, out), _manifest_info(manifest, shard_dir, config))
        except BaseException:
            # a shard refused (or an interrupt) after earlier ones were written: shards without a manifest would
            # pass validate as a complete copy, so the copy goes whole or not at all
            if written:
                clear_output(out)
            raise
        finally:
            if faces is not None:
                faces.close()
    return result


def _sound_samples(tar: Path, entry: dict[str, Any] | None, have_manifest: bool) -> list[Sample]:
    """Every sample of ``tar`` (read whole before anything of it is written); AnnotateError at validate's first
    error. A malformed ``quality`` field is no reason to refuse: the annotation replaces it (and validate's message
    for it says to run --annotate)."""
    samples = []
    for sample, issues in checked_samples(tar, entry, have_manifest):
        errors = [i for i in issues if i.level == "error" and i.check != QUALITY_KEY]
        if errors:
            where = f"{tar} sample {errors[0].key}" if errors[0].key else str(tar)
            raise AnnotateError(f"{where}: {errors[0].message} (vitonprep validate lists every problem; "
                                "only sound shards are annotated)")
        if sample is not None:
            samples.append(sample)
    return samples


def _annotated(sample: Sample, shard: str, config: QualityConfig, faces: GarmentFaces | None,
               result: ShardsQuality, progress: Callable[[str, int], None] | None) -> Sample:
    """The sample with meta.json's ``quality`` set (last key, an old one replaced); other members untouched."""
    meta = codecs.decode_json(sample.members["meta.json"])
    try:
        report = check_sample(decode_sample(sample.members, sample.key), config, faces)  # sound: decodes
    except Exception as exc:  # noqa: BLE001 - one odd sample must not end the run over the others
        # left unchecked (no field; an old one judged other data or was malformed), listed like an undecodable
        logger.warning("%s %s: could not be checked, written without a quality field: %s", shard, sample.key, exc)
        result.undecodable.append((shard, sample.key, f"could not be checked: {exc}"))
        meta = {k: v for k, v in meta.items() if k != QUALITY_KEY}
    else:
        result.results.append((shard, sample.key, report))
        meta = with_quality(meta, report.to_dict())
    if progress is not None:
        progress(sample.key, 1)
    return Sample(sample.key, {**sample.members, "meta.json": codecs.encode_json(meta)})


def _stats_counts(results: list[tuple[str, str, QualityReport]]) -> dict[str, Any]:
    """A shard's stats entry ``quality`` as the build writes it (vitonprep.stages.quality.QualityCounts; nothing
    is dropped here)."""
    by_check: Counter[str] = Counter()
    for _, _, rep in results:
        by_check.update({f.check for f in rep.flags})
    return {"checked": len(results), "flagged": sum(bool(rep.flags) for _, _, rep in results), "dropped": 0,
            "by_check": dict(sorted(by_check.items()))}


def _failures(tar: Path) -> list[Failure]:
    """The build's recorded failures of this shard (its stats file, read as untrusted), carried into the copy."""
    try:
        stats = json.loads(tar.with_name(tar.stem + "_stats.json").read_bytes())
    except (OSError, ValueError):
        return []
    records = stats.get("failures") if isinstance(stats, dict) else None
    out = []
    for r in records if isinstance(records, list) else []:
        if isinstance(r, dict) and all(isinstance(r.get(k), str) for k in ("source", "stage", "reason")):
            out.append(Failure(r["source"], r["stage"], r["reason"], r["key"] if isinstance(r.get("key"), str)
                               else None))
    return out


def _manifest_name(manifest: dict[str, Any] | None, out: Path) -> str:
    name = manifest.get("name") if isinstance(manifest, dict) else None
    return name if isinstance(name, str) else out.name


def _manifest_info(manifest: dict[str, Any] | None, shard_dir: Path, config: QualityConfig) -> dict[str, Any]:
    """The input manifest's own fields (pair lists, resolved config) and where the annotation came from; the
    counts and checksums are the writer's."""
    own = manifest.get("vitonprep") if isinstance(manifest, dict) else None
    info = {}
    if isinstance(own, dict):
        info = {k: v for k, v in own.items() if k not in ("schema_version", "nsamples", "nfailures", "fields")}
    info["quality_annotated"] = {"from": str(shard_dir), "config": dataclasses.asdict(config)}
    return info
