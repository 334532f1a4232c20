"""``meta.json``: the one place its fields are put together, for the build, the converters and rebuilds.

The record is: ``schema_version``, ``key``, ``producers`` (member -> back-end, approximate?, note), the sample's
identity (`SampleIdentity`: files, ids, pair, split, category, sizes), what made it (fit, person check,
pipeline; builds only), ``source`` (dataset and licence), the optional statuses (why an optional member is
absent), ``rebuilt_from`` (rebuilds) and, last, ``quality`` (the quality checks' verdict; builds with the quality
stage only, `with_quality`). The key order is fixed here (`vitonprep.codecs.encode_json` writes the keys sorted,
so the bytes do not depend on it). ``docs/architecture.md`` ("Data contract") describes each field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from vitonprep.schema import SCHEMA_VERSION

__all__ = ["SampleIdentity", "meta_record", "with_header", "with_quality", "carry_over_meta", "CARRIED_OVER",
           "QUALITY_KEY"]

#: fields a rebuild from shards keeps from the input sample (they describe the photos, which it keeps too)
CARRIED_OVER = ("person_file", "cloth_file", "person_id", "cloth_id", "pair", "original_size", "fit", "source")
#: the quality checks' verdict, ``QualityReport.to_dict()``; a meta without it was never checked
QUALITY_KEY = "quality"


@dataclass(frozen=True)
class SampleIdentity:
    """Who the sample is: source files (relative to the input root), ids, pair, split, category, sizes."""

    person_file: str
    cloth_file: str
    person_id: str
    cloth_id: str
    pair: str
    split: str
    category: str
    size: tuple[int, int]
    original_size: tuple[int, int]

    def to_dict(self) -> dict[str, Any]:
        return {"person_file": self.person_file, "cloth_file": self.cloth_file, "person_id": self.person_id,
                "cloth_id": self.cloth_id, "pair": self.pair, "split": self.split, "category": self.category,
                "size": list(self.size), "original_size": list(self.original_size)}


def meta_record(key: str, producers: Mapping[str, Mapping[str, Any]], identity: SampleIdentity | Mapping[str, Any],
                *, made_by: Mapping[str, Any] | None = None, source: Mapping[str, Any],
                statuses: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The meta.json object of one sample, keys in the contract's order.

    ``producers``: member name -> `Producer.to_dict()`. ``made_by``: build details (fit, person_check,
    pipeline). ``source``: ``{"dataset", "licence"}``. ``statuses``: ``caption_status``/``cloth_pose_status``.
    """
    ident = identity.to_dict() if isinstance(identity, SampleIdentity) else dict(identity)
    return with_header(key, producers, {**ident, **dict(made_by or {}), "source": dict(source),
                                        **dict(statuses or {})})


def with_header(key: str, producers: Mapping[str, Mapping[str, Any]], fields: Mapping[str, Any]) -> dict[str, Any]:
    """``fields`` (identity, details, source, in that order) behind the header every meta.json starts with."""
    return {"schema_version": SCHEMA_VERSION, "key": key, "producers": dict(producers), **fields}


def with_quality(meta: Mapping[str, Any], quality: Mapping[str, Any]) -> dict[str, Any]:
    """``meta`` with ``quality`` (``{"flags": [...], "scores": {...}}``) as its last key, replacing any earlier one."""
    out = {k: v for k, v in meta.items() if k != QUALITY_KEY}
    out[QUALITY_KEY] = dict(quality)
    return out


def carry_over_meta(old: Mapping[str, Any], new: Mapping[str, Any], rebuilt_from: Mapping[str, Any]
                    ) -> dict[str, Any]:
    """A rebuilt sample's meta: the new record, with the input's identity and source (`CARRIED_OVER`), the input's
    producers of members the pipeline did not remake, and where it was rebuilt from. The input's ``quality`` is
    never kept: it judged the input's maps, and the rebuild's quality stage judges its own."""
    meta = {k: v for k, v in new.items() if k != QUALITY_KEY}
    for k in CARRIED_OVER:
        if k in old:
            meta[k] = old[k]
    meta["producers"] = {**old.get("producers", {}), **new["producers"]}
    meta["rebuilt_from"] = dict(rebuilt_from)
    return meta
