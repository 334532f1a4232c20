"""The shard contract: what one vitonprep sample is, key by key.

This module is the only part of vitonprep that vitontrain imports. A sample in a shard is a set of tar members
``{__key__}.{field}``; ``field`` is the name below followed by its extension (e.g. ``agn_mask.png``). Field names
follow StableVITON's batch keys (``image``, ``agn``, ``agn_mask``, ``cloth``, ``cloth_mask``, ``image_densepose``,
``gt_cloth_warped_mask``) plus our own (``parse``, ``parse_agn``, ``pose``, ``pose_render``, ``meta``).

Conventions, fixed here once:
- every person-aligned map has the person image's size (768x1024 for VITON-HD-style data);
- masks are stored losslessly as single-channel PNG with values {0, 255} and decode to ``bool`` arrays;
  ``agn_mask`` keeps the on-disk VITON-HD convention **True/white = region to inpaint** (StableVITON inverts it
  when loading, so does our trainer);
- label maps are palette PNGs whose indices are CIHP ids (0..19) and decode to ``uint8`` arrays, never through an
  RGB decoder (webdataset's default image decoders convert a palette PNG to RGB, which loses the ids);
- RGB images decode to ``uint8`` HxWx3 arrays.
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from vitonprep.errors import VitonprepError

SCHEMA_VERSION = 1

#: Target size of every person-aligned map, (width, height): VITON-HD's 768x1024.
PERSON_SIZE = (768, 1024)

#: Garment categories (DressCode names; VITON-HD is all upper_body).
CATEGORIES = ("upper_body", "lower_body", "dresses")
SPLITS = ("train", "test")
#: person_only samples come from a person photo without a garment photo (a flat raw folder); they carry every
#: person-side map but no ``cloth``/``cloth_mask``, and trainers skip them.
PAIRINGS = ("paired", "unpaired", "person_only")
GARMENT_FIELDS = ("cloth", "cloth_mask")

#: StableVITON (dataset.py cloth_mask_check) replaces a cloth mask with fewer foreground pixels by all-ones;
#: we flag such masks instead of silently replacing them.
STABLEVITON_MIN_CLOTH_MASK_PIXELS = 30720 * 4

#: Sample keys: no dots (webdataset splits member names at the first dot), no path separators.
KEY_PATTERN = re.compile(r"\A[A-Za-z0-9_\-]+\Z")  # \Z: "$" would also accept a final newline


class Kind(str, enum.Enum):
    """Semantic type of a field; decides its codec and the checks validate applies."""

    RGB = "rgb"  # HxWx3 uint8
    MASK = "mask"  # HxW bool, stored as L PNG {0,255}
    LABELS = "labels"  # HxW uint8 CIHP ids, stored as P PNG
    KEYPOINTS = "keypoints"  # OpenPose 1.3 BODY_25 JSON
    META = "meta"  # metadata JSON
    CAPTION = "caption"  # garment tags + caption JSON (vitonprep.captions.check_caption)


class SizeRule(str, enum.Enum):
    PERSON = "person"  # same size as `image`
    FREE = "free"  # any size (garment photos keep theirs only if not person-aligned; we align them too)
    NONE = "none"  # not an image


@dataclass(frozen=True)
class Field:
    name: str
    ext: str
    kind: Kind
    dtype: str
    size: SizeRule
    required: bool
    description: str
    #: value range for label maps (inclusive)
    label_range: tuple[int, int] | None = None

    @property
    def member(self) -> str:
        """Suffix of the tar member, e.g. ``agn_mask.png``."""
        return f"{self.name}.{self.ext}"


FIELDS: tuple[Field, ...] = (
    Field("image", "jpg", Kind.RGB, "uint8", SizeRule.PERSON, True, "person photo (JPEG q95)"),
    Field("cloth", "jpg", Kind.RGB, "uint8", SizeRule.PERSON, True, "in-shop garment photo (JPEG q95)"),
    Field("cloth_mask", "png", Kind.MASK, "bool", SizeRule.PERSON, True, "garment silhouette, True = garment"),
    Field("agn", "jpg", Kind.RGB, "uint8", SizeRule.PERSON, True,
          "clothing-agnostic person, region to inpaint painted gray (128); VITON-HD agnostic-v3.2"),
    Field("agn_mask", "png", Kind.MASK, "bool", SizeRule.PERSON, True,
          "True = region to inpaint (VITON-HD agnostic-mask, white = inpaint)"),
    Field("image_densepose", "jpg", Kind.RGB, "uint8", SizeRule.PERSON, True,
          "DensePose fine segmentation I rendered with PARULA on black"),
    Field("gt_cloth_warped_mask", "png", Kind.MASK, "bool", SizeRule.PERSON, True,
          "worn-garment silhouette in person coordinates (StableVITON ATV loss)"),
    Field("parse", "png", Kind.LABELS, "uint8", SizeRule.PERSON, True,
          "human parsing, CIHP ids 0..19 (VITON-HD image-parse-v3)", (0, 19)),
    Field("parse_agn", "png", Kind.LABELS, "uint8", SizeRule.PERSON, True,
          "parsing with garment, neck and arms removed (VITON-HD image-parse-agnostic-v3.2)", (0, 19)),
    Field("pose", "json", Kind.KEYPOINTS, "float32", SizeRule.NONE, True,
          "OpenPose 1.3 JSON, BODY_25 (+ face 70, hands 21+21), pixels of `image`"),
    Field("pose_render", "png", Kind.RGB, "uint8", SizeRule.PERSON, False,
          "rendered skeleton on black (VITON-HD openpose_img)"),
    Field("meta", "json", Kind.META, "object", SizeRule.NONE, True, "per-sample metadata, see META_KEYS"),
    Field("caption", "json", Kind.CAPTION, "object", SizeRule.NONE, False,
          "garment tags + IDM-VTON caption with its source (vitonprep.captions), optional"),
    Field("cloth_pose", "json", Kind.KEYPOINTS, "float32", SizeRule.NONE, False,
          "OpenPose 1.3 JSON of the person wearing the garment in the garment photo (pixels of `cloth`), "
          "optional: only when that photo shows a person"),
)

FIELDS_BY_NAME: Mapping[str, Field] = {f.name: f for f in FIELDS}
FIELDS_BY_MEMBER: Mapping[str, Field] = {f.member: f for f in FIELDS}
REQUIRED_FIELDS: tuple[str, ...] = tuple(f.name for f in FIELDS if f.required)


def required_fields(pair: str | None) -> tuple[str, ...]:
    """Fields a sample of this pairing must have (person_only samples have no garment)."""
    if pair == "person_only":
        return tuple(n for n in REQUIRED_FIELDS if n not in GARMENT_FIELDS)
    return REQUIRED_FIELDS

#: Keys every `meta.json` carries.
META_KEYS: tuple[str, ...] = (
    "schema_version",  # SCHEMA_VERSION
    "key",  # the sample key
    "person_file",  # source file name of the person photo (relative to the source root)
    "cloth_file",  # source file name of the garment photo
    "person_id",  # stem of the person photo
    "cloth_id",  # stem of the garment photo
    "pair",  # "paired" | "unpaired" | "person_only"
    "split",  # "train" | "test"
    "category",  # "upper_body" | "lower_body" | "dresses"
    "size",  # [width, height] of every person-aligned map
    "original_size",  # [width, height] of the person photo as found
    "producers",  # field -> {"backend": str, "approximate": bool, "note": str}
    "source",  # {"dataset": str, "licence": str}
)
#: Keys a `meta.json` may carry besides `META_KEYS`; docs/architecture.md ("Metadata and provenance") describes each.
OPTIONAL_META_KEYS: tuple[str, ...] = (
    "fit", "person_check", "pipeline",  # builds only: the photos' fit, the person check, the pipeline's name
    "caption_status", "cloth_pose_status",  # why an optional member is absent
    "rebuilt_from",  # rebuilds from shards: {"dataset", "shard"}
    # the quality checks' verdict, last: {"flags": [{"check": str, "reason": str}, ...], "scores": {str: number}}
    # (QualityReport.to_dict(); an empty flags list = passed). No key = never checked, neither passed nor flagged
    "quality",
)


def check_key(key: str) -> str:
    """Return ``key`` if it is a legal sample key, else raise ValueError naming it."""
    if not KEY_PATTERN.match(key):
        raise ValueError(f"illegal sample key {key!r}: use letters, digits, '_' and '-' only (no dots)")
    return key


def sample_key(person_id: str, cloth_id: str, pair: str) -> str:
    """Paired samples are keyed by the person id; unpaired ones by ``person__cloth``."""
    key = f"{person_id}__{cloth_id}" if pair == "unpaired" else person_id
    return check_key(key.replace(".", "_"))


def split_member(name: str) -> tuple[str, str]:
    """``'00001_00.agn_mask.png' -> ('00001_00', 'agn_mask.png')`` (webdataset's base_plus_ext rule)."""
    base = name.rsplit("/", 1)[-1]
    key, _, suffix = base.partition(".")
    return key, suffix


#: longest plain name accepted (file systems allow 255 bytes; suffixes are added to it)
MAX_NAME_LENGTH = 200


class UnsafeName(VitonprepError, ValueError):
    """A name or path from data that is not a plain name, or that would lead outside its root (a ValueError too, as
    callers that predate the package's base error expect)."""


def safe_name(value: object, what: str) -> str:
    """``value`` if it is a plain name (the sample-key alphabet: letters, digits, ``_``, ``-``; no dots, no
    separators), else UnsafeName saying ``what`` it was. Every file name derived from shard data passes here."""
    if not isinstance(value, str) or not KEY_PATTERN.match(value) or len(value) > MAX_NAME_LENGTH:
        raise UnsafeName(f"{what} {value!r} is not a plain name (letters, digits, '_' and '-' only)")
    return value


def safe_path(root: Path, template: str, **names: object) -> Path:
    """``root / template.format(**names)``, where ``template`` is ours (layout folders, suffixes) and every value
    of ``names`` comes from data and must pass :func:`safe_name` (under its keyword as ``what``).

    The result must resolve inside ``root``: links already present below ``root`` are followed by the check, so
    one that points elsewhere makes the path refused rather than written through. It lives here, beside
    KEY_PATTERN, so that vitontrain (which imports nothing else from vitonprep) uses the same rule.
    """
    checked = {k: safe_name(v, k) for k, v in names.items()}
    rel = Path(template.format(**checked))
    if rel.is_absolute() or ".." in rel.parts:  # templates are ours; this guards a wrong one
        raise UnsafeName(f"layout {template!r} is not relative")
    path = Path(root) / rel
    if not path.resolve().is_relative_to(Path(root).resolve()):
        raise UnsafeName(f"{path} resolves to {path.resolve()}, outside {root}")
    return path


# ---------------------------------------------------------------------------------------------------------------
# meta.json "quality": written by the quality checks, read as untrusted data by validate, export, inspect and the
# trainer alike (here, so that vitontrain - which imports only vitonprep's contract modules - uses the same rules).
# {"flags": [{"check": NAME, "reason": TEXT}, ...], "scores": {NAME: NUMBER}}; an empty flags list means passed; no
# key means never checked; any other shape is malformed. Keys other than flags and scores are ignored.

#: the meta.json key the quality checks write
QUALITY_KEY = "quality"


@dataclass(frozen=True)
class QualityField:
    """``state``: ``unchecked`` (no field), ``passed``, ``flagged`` or ``malformed`` (``problem`` says why);
    ``flags``: (check, reason) of a flagged sample."""

    state: str
    flags: tuple[tuple[str, str], ...] = ()
    problem: str = ""

    @property
    def checks(self) -> list[str]:
        """The flagged checks, each once, in flag order."""
        return list(dict.fromkeys(check for check, _ in self.flags))


def read_quality(meta: Any) -> QualityField:
    """The quality state of a decoded meta.json (anything: a meta that is not an object has no field)."""
    if not isinstance(meta, dict) or QUALITY_KEY not in meta:
        return QualityField("unchecked")
    value = meta[QUALITY_KEY]
    if not isinstance(value, dict):
        return QualityField("malformed", problem=f"meta.quality is {type(value).__name__}, not an object")
    flags, scores = value.get("flags"), value.get("scores")
    if not isinstance(flags, list):
        return QualityField("malformed", problem="meta.quality.flags is missing or not a list")
    for i, flag in enumerate(flags):
        if not (isinstance(flag, dict) and isinstance(flag.get("check"), str) and flag["check"]
                and isinstance(flag.get("reason"), str)):
            return QualityField("malformed", problem=f"meta.quality.flags[{i}] is not an object with a check "
                                                     "name and a reason (text)")
    if not isinstance(scores, dict):
        return QualityField("malformed", problem="meta.quality.scores is missing or not an object")
    for name, score in scores.items():
        if not finite_number(score):
            return QualityField("malformed", problem=f"meta.quality.scores[{shown(name)}] is {shown(score)}, not "
                                                     "a finite number")
    if not flags:
        return QualityField("passed")
    return QualityField("flagged", tuple((f["check"], f["reason"]) for f in flags))


def finite_number(value: Any) -> bool:
    """A JSON number that is a finite float: not a bool, NaN or infinity, and not an integer too large for a
    float (json reads ``1`` followed by 400 zeros as an int, and ``math.isfinite`` raises OverflowError on it)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False

def cut(text: str, limit: int) -> str:
    """Untrusted text cut to ``limit`` characters for a message."""
    return text if len(text) <= limit else text[:limit - 3] + "..."


def shown(value: Any, limit: int = 60) -> str:
    """``repr`` of an untrusted value, cut to ``limit`` characters for a message."""
    return cut(repr(value), limit)
