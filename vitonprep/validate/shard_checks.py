"""Whole shards: tars against their stats files and the manifest, keys unique across shards, the manifest's
totals; every sample through ``sample_checks``. Shards are checked independently (in worker processes when asked)."""

from __future__ import annotations

import hashlib
import json
import logging
import tarfile
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator

from vitonprep.runner import map_in_processes
from vitonprep.shards import MANIFEST_NAME, Sample, iter_tar_samples, list_shards, read_manifest
from vitonprep.validate.quality_field import sample_quality
from vitonprep.validate.report import Issue, ValidationReport
from vitonprep.validate.sample_checks import validate_sample

logger = logging.getLogger(__name__)


@dataclass
class ShardCheck:
    """What one shard's checks found: the part of a report that needs no other shard."""

    name: str
    count: int
    keys: list[str]
    issues: list[Issue]
    #: samples per quality state (vitonprep.validate.quality_field)
    quality: Counter[str] = field(default_factory=Counter)


def validate_shards(shard_dir: Path, progress: Callable[[str, int], None] | None = None,
                    workers: int = 1, strict: bool = False) -> ValidationReport:
    """Library twin of `vitonprep validate`. Shards are checked independently, in ``workers`` processes when
    more than one (decoding every member is ~20 ms per sample, a tenth of building it); duplicate keys
    across shards and the manifest's totals are checked here, in shard order, so the report does not depend on
    ``workers``. Quality flags are warnings, errors with ``strict``."""
    report = ValidationReport(str(shard_dir))
    shards = list_shards(shard_dir)
    if not shards:
        report.issues.append(Issue("error", "-", None, "shards", f"no .tar shards in {shard_dir}"))
        return report
    manifest, listed, problem = read_listing(shard_dir)
    if problem:
        report.issues.append(Issue("error" if manifest is not None else "warning", "-", None, "manifest", problem))
    check = partial(_check_shard, listed=listed, have_manifest=manifest is not None)
    seen_keys: dict[str, str] = {}
    for shard in map_in_processes(check, shards, workers):
        report.nshards += 1
        for key in shard.keys:
            if key in seen_keys:
                report.issues.append(Issue("error", shard.name, key, "duplicate",
                                           f"key {key!r} already seen in {seen_keys[key]}"))
            seen_keys[key] = shard.name
        report.issues.extend(shard.issues)
        report.per_shard[shard.name] = shard.count
        report.nsamples += shard.count
        report.quality.update(shard.quality)
        if progress:
            progress(shard.name, shard.count)
    names = {p.name for p in shards}
    for url in listed:
        if url not in names:
            report.issues.append(Issue("error", url, None, "manifest", f"manifest lists {url} but it is missing"))
    for stats in sorted(shard_dir.glob("[0-9][0-9][0-9][0-9][0-9]_stats.json")):
        tar_name = stats.name[:5] + ".tar"
        if tar_name not in names:
            report.issues.append(Issue("error", tar_name, None, "stats",
                                       f"{stats.name} records a finished {tar_name}, which is missing"))
    if manifest is not None:
        want = manifest.get("vitonprep", {}).get("nsamples") if isinstance(manifest.get("vitonprep"), dict) else None
        if want is not None and want != report.nsamples:
            report.issues.append(Issue("error", "-", None, "count",
                                       f"manifest says {want} samples, shards hold {report.nsamples}"))
    if strict:
        report.flags_as_errors()
    return report


def read_listing(shard_dir: Path) -> tuple[dict[str, Any] | None, dict[str, dict[str, Any]], str]:
    """(manifest or None, its shard entries by file name, the problem with it or ""): a missing manifest is a
    warning-level problem (nothing to check the tars against), an unreadable one an error-level one."""
    try:
        manifest = read_manifest(shard_dir)
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        return {}, {}, f"{MANIFEST_NAME} is unreadable: {exc}"
    if manifest is None:
        return None, {}, f"no {MANIFEST_NAME}: checksums not verified"
    entries = manifest.get("shardlist") if isinstance(manifest, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) and isinstance(e.get("url"), str)
                                                for e in entries):
        return {}, {}, f"{MANIFEST_NAME} has no valid shardlist (not a wids shard index)"
    return manifest, {e["url"]: e for e in entries}, ""


def checked_samples(tar_path: Path, entry: dict[str, Any] | None,
                    have_manifest: bool) -> Iterator[tuple[Sample | None, list[Issue]]]:
    """Every check of one shard that needs no other shard, in reading order.

    Yields ``(None, issues)`` first: what is wrong with the shard as a whole before a member is read (its stats
    file, the completion marker, missing or unreadable; the tar's size and checksums against the stats file and
    the manifest entry ``entry``; the sample counts they promise). Then ``(sample, issues)`` for each sample
    (``validate_sample`` plus its members against the per-member sha256 of the stats file), and last
    ``(None, issues)`` for what only the whole read shows (a truncated or crafted tar, counts). Export stops at
    the first shard-level error; validate reads on to report everything.
    """
    name = tar_path.name
    issues: list[Issue] = []

    def shard_issue(check: str, message: str) -> None:
        issues.append(Issue("error", name, None, check, message))

    try:
        size, sha, md5 = _digests(tar_path)
    except OSError as exc:
        shard_issue("tar", f"{name} cannot be read: {exc}")
        yield None, issues
        return
    stats_file = tar_path.with_name(tar_path.stem + "_stats.json")
    stats = _read_stats(stats_file)
    if stats is None:
        shard_issue("stats", f"{name} has no {stats_file.name}: the shard was never completed "
                             "(the stats file is its completion marker)")
    elif isinstance(stats, str):
        shard_issue("stats", stats)
        stats = None
    else:
        for label, want, have in (("sha256", stats.get("sha256"), sha), ("filesize", stats.get("filesize"), size)):
            if want != have:
                shard_issue("checksum", f"{name}: {label} differs from {stats_file.name} (modified or truncated)")
        if stats.get("shard") != name or stats.get("nsamples") != len(stats["samples"]):
            shard_issue("stats", f"{stats_file.name} does not describe {name} (shard name or sample count)")
    if entry is None:
        if have_manifest:
            shard_issue("manifest", f"{name} is not listed in {MANIFEST_NAME} (incomplete run?)")
    else:
        if entry.get("sha256") != sha:
            shard_issue("checksum", f"{name}: sha256 differs from {MANIFEST_NAME} (modified or truncated)")
        if entry.get("md5sum") not in (None, md5):
            shard_issue("checksum", f"{name}: md5sum differs from {MANIFEST_NAME} (modified or truncated)")
        if entry.get("filesize") != size:
            shard_issue("manifest", f"{name}: filesize is {size} bytes, {MANIFEST_NAME} says {entry.get('filesize')}")
        if stats is not None and entry.get("nsamples") != stats.get("nsamples"):
            shard_issue("count", f"{MANIFEST_NAME} says {entry.get('nsamples')} samples in {name}, "
                                 f"{stats_file.name} says {stats.get('nsamples')}")
    yield None, issues

    recorded = {s["key"]: s["members"] for s in stats["samples"]} if stats is not None else None
    count, last = 0, None
    issues = []
    try:
        for sample in iter_tar_samples(tar_path):
            count, last = count + 1, sample.key
            found = validate_sample(sample, name)
            if recorded is not None:
                found += _against_stats(sample, recorded.pop(sample.key, None), name, stats_file.name)
            yield sample, found
    except (tarfile.TarError, EOFError, OSError) as exc:
        where = f" (last good key {last})" if last else ""
        issues.append(Issue("error", name, last, "tar",
                            f"{name} is truncated or corrupt after {count} samples{where}: {exc}"))
    if stats is not None and stats.get("nsamples") != count:
        shard_issue("count", f"{name} holds {count} samples, its stats say {stats.get('nsamples')}")
    elif stats is None and entry is not None and entry.get("nsamples") != count:
        shard_issue("count", f"{MANIFEST_NAME} says {entry.get('nsamples')} samples in {name}, it holds {count}")
    if recorded and not any(i.check == "tar" for i in issues):
        shard_issue("stats", f"{stats_file.name} records samples missing from {name}: {sorted(recorded)[:5]}")
    yield None, issues


def _against_stats(sample: Sample, members: dict[str, str] | None, shard: str, stats_name: str) -> list[Issue]:
    if members is None:
        return [Issue("error", shard, sample.key, "stats", f"{sample.key} is not recorded in {stats_name}")]
    found = []
    for suffix in sorted(set(sample.members) | set(members)):
        data, want = sample.members.get(suffix), members.get(suffix)
        if data is None or want is None:
            what = "missing" if data is None else f"not recorded in {stats_name}"
            found.append(Issue("error", shard, sample.key, "stats", f"{sample.key}.{suffix} is {what}"))
        elif hashlib.sha256(data).hexdigest() != want:
            found.append(Issue("error", shard, sample.key, "checksum",
                               f"{sample.key}.{suffix} differs from its recorded sha256"))
    return found


def _check_shard(tar_path: Path, listed: dict[str, Any], have_manifest: bool) -> ShardCheck:
    """Every check of one shard that needs no other shard: checksums, each sample, counts."""
    issues: list[Issue] = []
    keys: list[str] = []
    quality: Counter[str] = Counter()
    for sample, found in checked_samples(tar_path, listed.get(tar_path.name), have_manifest):
        if sample is not None:
            keys.append(sample.key)
            quality[sample_quality(sample.members).state] += 1
        issues.extend(found)
    return ShardCheck(tar_path.name, len(keys), keys, issues, quality)


def _digests(tar_path: Path) -> tuple[int, str, str]:
    size, sha, md5 = 0, hashlib.sha256(), hashlib.md5()
    with open(tar_path, "rb") as fh:
        while block := fh.read(1 << 20):
            size += len(block)
            sha.update(block)
            md5.update(block)
    return size, sha.hexdigest(), md5.hexdigest()


def _read_stats(path: Path) -> dict[str, Any] | str | None:
    """The stats file, None when there is none, or what is wrong with it."""
    if not path.is_file():
        return None
    try:
        stats = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        return f"{path.name} is not readable JSON: {exc}"
    samples = stats.get("samples") if isinstance(stats, dict) else None
    if not isinstance(samples, list) or not all(
            isinstance(r, dict) and isinstance(r.get("key"), str) and isinstance(r.get("members"), dict)
            and all(isinstance(v, str) for v in r["members"].values()) for r in samples):
        return f"{path.name} lacks the per-sample member checksums of a vitonprep stats file"
    return stats
