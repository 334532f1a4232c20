"""The ``quality`` field of a sample's meta.json, read as untrusted data.

The quality checks write ``{"flags": [{"check": NAME, "reason": TEXT}, ...], "scores": {NAME: NUMBER, ...}}``
(``vitonprep.quality.QualityReport.to_dict``) as the last key of meta.json; an empty ``flags`` list means the
sample passed. A sample without the key was never checked (converted data, old builds): it is neither flagged nor
passed. A value of any other shape is malformed: validate reports it as an error, export refuses the sample with
the other errors, and the trainer keeps it as unchecked (vitontrain/data/quality.py reads the field by the same
rules). Keys other than ``flags`` and ``scores`` are ignored, so a later writer may add some.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from vitonprep import codecs

__all__ = ["QUALITY_KEY", "QualityField", "read_quality", "cut", "finite_number", "sample_quality", "shown"]

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


def sample_quality(members: dict[str, bytes]) -> QualityField:
    """The quality state of an encoded sample (``member suffix -> bytes``); a meta.json that does not decode has
    no field (validate reports it as a meta error)."""
    try:
        meta = codecs.decode_json(members.get("meta.json", b"{}"), "meta.json")
    except codecs.DecodeError:
        return QualityField("unchecked")
    return read_quality(meta)


def cut(text: str, limit: int) -> str:
    """Untrusted text cut to ``limit`` characters for a message."""
    return text if len(text) <= limit else text[:limit - 3] + "..."


def shown(value: Any, limit: int = 60) -> str:
    """``repr`` of an untrusted value, cut to ``limit`` characters for a message."""
    return cut(repr(value), limit)
