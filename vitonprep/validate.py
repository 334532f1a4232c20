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
from typing import Any, Callable

import numpy as np

from vitonprep import codecs
from vitonprep.schema import (
    CATEGORIES, FIELDS, FIELDS_BY_MEMBER, META_KEYS, PAIRINGS, SPLITS, STABLEVITON_MIN_CLOTH_MASK_PIXELS, Kind,
    SizeRule, check_key, required_fields, sample_key,
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
    except (KeyError, IndexError, TypeError, ValueError) as exc:
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
    if meta["key"] != key:
        add("error", "meta", f"meta.key {meta['key']!r} differs from the sample key")
    if meta["pair"] not in PAIRINGS or meta["split"] not in SPLITS or meta["category"] not in CATEGORIES:
        add("error", "meta", f"bad pair/split/category: {meta['pair']!r}/{meta['split']!r}/{meta['category']!r}")
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
    manifest = read_manifest(shard_dir)
    if not shards:
        report.issues.append(Issue("error", "-", None, "shards", f"no .tar shards in {shard_dir}"))
        return report
    if manifest is None:
        report.issues.append(Issue("warning", "-", None, "manifest", f"no {MANIFEST_NAME}: checksums not verified"))
    listed = {s["url"]: s for s in (manifest or {}).get("shardlist", [])}
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
    for url in listed:
        if not (shard_dir / url).is_file():
            report.issues.append(Issue("error", url, None, "manifest", f"manifest lists {url} but it is missing"))
    if manifest is not None:
        want = manifest.get("vitonprep", {}).get("nsamples")
        if want is not None and want != report.nsamples:
            report.issues.append(Issue("error", "-", None, "count",
                                       f"manifest says {want} samples, shards hold {report.nsamples}"))
    return report


def _check_shard(tar_path: Path, listed: dict[str, Any], have_manifest: bool) -> ShardCheck:
    """Every check of one shard that needs no other shard: checksums, each sample, counts."""
    name = tar_path.name
    issues: list[Issue] = []
    keys: list[str] = []
    _check_checksums(tar_path, listed.get(name), have_manifest, issues)
    stats = _read_stats(tar_path)
    member_sums = {s["key"]: s["members"] for s in stats.get("samples", [])} if stats else {}
    try:
        for sample in iter_tar_samples(tar_path):
            keys.append(sample.key)
            issues.extend(validate_sample(sample, name))
            if sample.key in member_sums:
                for suffix, data in sample.members.items():
                    want = member_sums[sample.key].get(suffix)
                    if want and hashlib.sha256(data).hexdigest() != want:
                        issues.append(Issue("error", name, sample.key, "checksum",
                                            f"{sample.key}.{suffix} differs from its recorded sha256"))
    except (tarfile.TarError, EOFError, OSError) as exc:
        last = keys[-1] if keys else None
        issues.append(Issue("error", name, last, "tar",
                            f"{name} is truncated or corrupt after {len(keys)} samples"
                            f"{f' (last good key {last})' if last else ''}: {exc}"))
    if stats and stats.get("nsamples") != len(keys):
        issues.append(Issue("error", name, None, "count",
                            f"{name} holds {len(keys)} samples, its stats say {stats.get('nsamples')}"))
    return ShardCheck(name, len(keys), keys, issues)


def _read_stats(tar_path: Path) -> dict[str, Any] | None:
    p = tar_path.with_name(tar_path.stem + "_stats.json")
    try:
        return json.loads(p.read_text()) if p.is_file() else None
    except json.JSONDecodeError:
        return None


def _check_checksums(tar_path: Path, entry: dict[str, Any] | None, have_manifest: bool,
                     issues: list[Issue]) -> None:
    if entry is None:
        if have_manifest:
            issues.append(Issue("error", tar_path.name, None, "manifest",
                                f"{tar_path.name} is not listed in {MANIFEST_NAME} (incomplete run?)"))
        return
    sha = hashlib.sha256(tar_path.read_bytes()).hexdigest()
    if sha != entry.get("sha256"):
        issues.append(Issue("error", tar_path.name, None, "checksum",
                            f"{tar_path.name} sha256 differs from {MANIFEST_NAME} (modified or truncated)"))
