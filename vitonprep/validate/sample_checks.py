"""One sample read back through the trainer's decoders and checked against the shard contract (schema.py)."""

from __future__ import annotations

import logging
from typing import Any, Callable

import numpy as np

from vitonprep import codecs
from vitonprep.derive.body25 import OpenPoseKeypoints
from vitonprep.schema import (
    CATEGORIES,
    FIELDS,
    FIELDS_BY_MEMBER,
    META_KEYS,
    PAIRINGS,
    SPLITS,
    STABLEVITON_MIN_CLOTH_MASK_PIXELS,
    Kind,
    SizeRule,
    UnsafeName,
    check_key,
    required_fields,
    safe_name,
    sample_key,
)
from vitonprep.shards import Sample
from vitonprep.validate.quality_field import cut, read_quality
from vitonprep.validate.report import QUALITY_FLAG, Issue

logger = logging.getLogger(__name__)


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
    _check_quality(decoded.get("meta"), add)
    return issues


def _check_pose(pose: Any, w: int, h: int, add: Callable[[str, str, str], None]) -> None:
    if pose is None:
        return
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
        # a NaN coordinate fails every comparison: without its own test it would pass as inside the image
        not_finite = vis & ~np.isfinite(arr[:, :2]).all(axis=1)
        if not_finite.any():
            idx = np.flatnonzero(not_finite)[:5].tolist()
            add("error", "keypoints", f"{name} keypoints {idx} have non-finite coordinates (NaN or infinity)")
        with np.errstate(invalid="ignore"):
            out = vis & ~not_finite & ((arr[:, 0] < 0) | (arr[:, 0] > w) | (arr[:, 1] < 0) | (arr[:, 1] > h))
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
        add("warning", "mask_area",
            "gt_cloth_warped_mask is empty (no worn garment in the parse; ATV loss gets no signal)")


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


def _check_quality(meta: Any, add: Callable[[str, str, str], None]) -> None:
    """A malformed ``quality`` field is an error; each flag a warning named ``quality.CHECK`` (``--strict`` makes
    them errors, ValidationReport.flags_as_errors)."""
    field = read_quality(meta)
    if field.state == "malformed":
        add("error", "quality", f"{field.problem} (the quality checks write {{flags: [{{check, reason}}], scores: "
                                "{name: number}}; rewrite it with vitonprep quality --annotate)")
    for check, reason in field.flags:
        add("warning", QUALITY_FLAG + cut(check, 40), f"flagged by {cut(check, 40)}: {cut(reason, 300)}")


#: meta.json fields that must be text (they become file names and list entries on export)
_META_TEXT = ("key", "person_file", "cloth_file", "person_id", "cloth_id", "pair", "split", "category")


def _dresscode_pair(meta: dict[str, Any]) -> bool:
    return meta["person_id"].rsplit("_", 1)[0] == meta["cloth_id"].rsplit("_", 1)[0]
