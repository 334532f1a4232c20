"""`vitonprep validate`: read every sample back through the trainer's decoders and check the contract.

Errors make the dataset unsound (exit 1); warnings are flagged for a person to look at (e.g. a cloth mask under
StableVITON's 122,880-pixel rule, which the official loader would silently replace by all-ones).
"""

from __future__ import annotations

import hashlib
import json
import logging
import tarfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from vitonprep import codecs
from vitonprep.schema import (
    CATEGORIES, FIELDS, FIELDS_BY_MEMBER, META_KEYS, PAIRINGS, SPLITS, STABLEVITON_MIN_CLOTH_MASK_PIXELS, Kind,
    SizeRule, UnsafeName, check_key, required_fields, safe_name, sample_key,
)
from vitonprep.shards import MANIFEST_NAME, Sample, iter_tar_samples, list_shards, read_manifest

logger = logging.getLogger(__name__)


@dataclass
class Issue:
    level: str  # "error" | "warning"
    shard: str
    key: str | None
    check: str
    message: str


@dataclass
class ValidationReport:
    shard_dir: str
    nshards: int = 0
    nsamples: int = 0
    issues: list[Issue] = field(default_factory=list)
    per_shard: dict[str, int] = field(default_factory=dict)

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.level == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.level == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors and self.nsamples > 0

    def counts_by_check(self) -> dict[tuple[str, str], int]:
        return dict(Counter((i.level, i.check) for i in self.issues))

    def to_dict(self) -> dict[str, Any]:
        return {
            "shard_dir": self.shard_dir,
            "ok": self.ok,
            "nshards": self.nshards,
            "nsamples": self.nsamples,
            "nerrors": len(self.errors),
            "nwarnings": len(self.warnings),
            "per_shard": self.per_shard,
            "issues": [asdict(i) for i in self.issues],
        }


def validate_sample(sample: Sample, shard: str) -> list[Issue]:
    """All checks of one sample; never raises for bad data."""
    issues: list[Issue] = []
    key = sample.key

    def add(level: str, check: str, msg: str) -> None:
        issues.append(Issue(level, shard, key, check, msg))

    try:
        check_key(key)
    except ValueError as exc:
        add("error", "key", str(exc))
    for suffix in sample.members:
        if suffix not in FIELDS_BY_MEMBER:
            add("warning", "schema", f"unknown member {key}.{suffix} (not in the shard contract)")
    decoded: dict[str, Any] = {}
    try:
        pair = codecs.decode_json(sample.members.get("meta.json", b"{}")).get("pair")
    except (codecs.DecodeError, AttributeError):
        pair = None
    required = required_fields(pair)
    for f in FIELDS:
        data = sample.members.get(f.member)
        if data is None:
            if f.name in required:
                add("error", "missing", f"required member {key}.{f.member} is missing")
            continue
        try:
            decoded[f.name] = codecs.decode_field(f, data, key)
        except codecs.DecodeError as exc:
            add("error", "binary_mask" if f.kind is Kind.MASK and "not binary" in str(exc) else "decode", str(exc))
    image = decoded.get("image")
    if image is not None:
        h, w = image.shape[:2]
        for f in FIELDS:
            v = decoded.get(f.name)
            if f.size is SizeRule.PERSON and v is not None and v.shape[:2] != (h, w):
                add("error", "size", f"{key}.{f.member} is {v.shape[1]}x{v.shape[0]}, image is {w}x{h}")
        _check_pose(decoded.get("pose"), w, h, add)
        meta = decoded.get("meta")
        if isinstance(meta, dict) and meta.get("size") not in (None, [w, h]):
            add("error", "size", f"meta.size {meta.get('size')} disagrees with image {w}x{h}")
    for name in ("parse", "parse_agn"):
        labels = decoded.get(name)
        if labels is not None and labels.size and int(labels.max()) > 19:
            bad = np.unique(labels[labels > 19])[:5].tolist()
            add("error", "label_range", f"{key}.{name}.png has labels {bad} outside CIHP 0..19")
    _check_masks(decoded, add)
    _check_meta(key, decoded.get("meta"), add)
    return issues


def _check_pose(pose: Any, w: int, h: int, add: Callable[[str, str, str], None]) -> None:
    if pose is None:
        return
    from vitonprep.derive.openpose import OpenPoseKeypoints

    try:
        people = pose["people"]
        person = people[0]
        lengths = {k: len(person[k]) for k in
                   ("pose_keypoints_2d", "face_keypoints_2d", "hand_left_keypoints_2d", "hand_right_keypoints_2d")}
        kp = OpenPoseKeypoints.from_json_dict(pose)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        add("error", "keypoints", f"pose.json is not OpenPose 1.3 BODY_25: {exc}")
        return
    expected = {"pose_keypoints_2d": 75, "face_keypoints_2d": 210, "hand_left_keypoints_2d": 63,
                "hand_right_keypoints_2d": 63}
    if lengths != expected:
        add("error", "keypoints", f"pose.json array lengths {lengths}, expected {expected}")
    for name, arr in (("pose", kp.pose), ("face", kp.face), ("hand_left", kp.hand_left),
                      ("hand_right", kp.hand_right)):
        vis = arr[:, 2] > 0
        out = vis & ((arr[:, 0] < 0) | (arr[:, 0] > w) | (arr[:, 1] < 0) | (arr[:, 1] > h))
        if out.any():
            idx = np.flatnonzero(out)[:5].tolist()
            # OpenPose itself extrapolates face/hand points past the border (official 03615_00 has a hand at
            # y=1070 of 1024), so only body joints outside the image are errors.
            level = "error" if name == "pose" else "warning"
            add(level, "keypoints", f"{name} keypoints {idx} lie outside the {w}x{h} image")
    if not (kp.pose[:, 2] > 0).any():
        add("error", "keypoints", "no body keypoint detected")


def _check_masks(decoded: dict[str, Any], add: Callable[[str, str, str], None]) -> None:
    cm = decoded.get("cloth_mask")
    if cm is not None:
        area = int(cm.sum())
        if area == 0:
            add("error", "mask_area", "cloth_mask is empty")
        elif area < STABLEVITON_MIN_CLOTH_MASK_PIXELS:
            add("warning", "mask_area", f"cloth_mask has {area} px, under StableVITON's "
                f"{STABLEVITON_MIN_CLOTH_MASK_PIXELS}-px rule (the official loader would replace it by all-ones)")
    am = decoded.get("agn_mask")
    if am is not None:
        frac = float(am.mean())
        if frac == 0:
            add("error", "mask_area", "agn_mask is empty: nothing to inpaint")
        elif frac > 0.95:
            add("error", "mask_area", f"agn_mask covers {frac:.0%} of the image: no person left to keep")
    gt = decoded.get("gt_cloth_warped_mask")
    if gt is not None and not gt.any():
        add("warning", "mask_area", "gt_cloth_warped_mask is empty (no worn garment in the parse; ATV loss gets no signal)")


def _check_meta(key: str, meta: Any, add: Callable[[str, str, str], None]) -> None:
    if meta is None:
        return
    if not isinstance(meta, dict):
        add("error", "meta", "meta.json is not an object")
        return
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        add("error", "meta", f"meta.json lacks {missing}")
        return
    not_text = [k for k in _META_TEXT if not isinstance(meta[k], str)]
    not_object = [k for k in ("producers", "source") if not isinstance(meta[k], dict)]
    if not_text or not_object:
        add("error", "meta", f"meta.json fields of the wrong type: {not_text + not_object} "
            "(text expected for ids and names, objects for producers and source)")
        return
    if meta["key"] != key:
        add("error", "meta", f"meta.key {meta['key']!r} differs from the sample key")
    if meta["pair"] not in PAIRINGS or meta["split"] not in SPLITS or meta["category"] not in CATEGORIES:
        add("error", "meta", f"bad pair/split/category: {meta['pair']!r}/{meta['split']!r}/{meta['category']!r}")
        return
    # ids name files when the dataset is exported: plain names only, as export requires (vitonprep.safepaths)
    ids = [("person_id", meta["person_id"])]
    if meta["pair"] != "person_only" or meta["cloth_id"]:
        ids.append(("cloth_id", meta["cloth_id"]))
    for what, value in ids:
        try:
            safe_name(value, f"meta.{what}")
        except UnsafeName as exc:
            add("error", "meta", str(exc))
            return
    if meta["pair"] == "paired" and meta["person_id"] != meta["cloth_id"] and not _dresscode_pair(meta):
        add("error", "pairing", f"paired sample with person {meta['person_id']} and cloth {meta['cloth_id']}")
    try:
        expected_key = sample_key(meta["person_id"], meta["cloth_id"], meta["pair"])
    except ValueError as exc:
        add("error", "pairing", str(exc))
        return
    if expected_key != key:
        add("error", "pairing", f"key {key!r} does not match its pair (expected {expected_key!r})")
    for name, prod in meta["producers"].items():
        if not isinstance(prod, dict) or not {"backend", "approximate"} <= set(prod):
            add("error", "meta", f"producer record of {name} lacks backend/approximate")


#: meta.json fields that must be text (they become file names and list entries on export)
_META_TEXT = ("key", "person_file", "cloth_file", "person_id", "cloth_id", "pair", "split", "category")


def _dresscode_pair(meta: dict[str, Any]) -> bool:
    return meta["person_id"].rsplit("_", 1)[0] == meta["cloth_id"].rsplit("_", 1)[0]


@dataclass
class ShardCheck:
    """What one shard's checks found: the part of a report that needs no other shard."""

    name: str
    count: int
    keys: list[str]
    issues: list[Issue]


def validate_shards(shard_dir: Path, progress: Callable[[str, int], None] | None = None,
                    workers: int = 1) -> ValidationReport:
    """Library twin of `vitonprep validate`. Shards are checked independently, in ``workers`` processes when
    more than one (decoding every member is ~20 ms per sample, a tenth of building it); duplicate keys
    across shards and the manifest's totals are checked here, in shard order, so the report does not depend on
    ``workers``."""
    from functools import partial

    from vitonprep.runner import map_in_processes

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
    for sample, found in checked_samples(tar_path, listed.get(tar_path.name), have_manifest):
        if sample is not None:
            keys.append(sample.key)
        issues.extend(found)
    return ShardCheck(tar_path.name, len(keys), keys, issues)


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
