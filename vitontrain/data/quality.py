"""The ``quality`` field of a sample's meta.json as the trainer reads it: flagged samples are skipped
(``data.skip_flagged``), unchecked ones kept, and a malformed field never stops training.

The field is ``{"flags": [{"check", "reason"}, ...], "scores": {name: number}}`` (an empty ``flags`` list = passed);
no field = never checked. The rules are vitonprep's (``vitonprep/validate/quality_field.py``, which validate and
export use; vitontrain imports only vitonprep's contract modules), and tests/test_quality_readers.py holds the two
readers equal on every shape. Here a malformed field counts as unchecked, with a warning naming the sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["QualityTally", "quality_state"]


def quality_state(meta: Any) -> tuple[str, str]:
    """(``unchecked`` | ``passed`` | ``flagged`` | ``malformed``, what is malformed) of a decoded meta.json."""
    if not isinstance(meta, dict) or "quality" not in meta:
        return "unchecked", ""
    value = meta["quality"]
    if not isinstance(value, dict):
        return "malformed", f"quality is {type(value).__name__}, not an object"
    flags, scores = value.get("flags"), value.get("scores")
    if not isinstance(flags, list) or not all(
            isinstance(f, dict) and isinstance(f.get("check"), str) and f["check"] and isinstance(f.get("reason"), str)
            for f in flags):
        return "malformed", "quality.flags is not a list of {check, reason} texts"
    if not isinstance(scores, dict) or not all(_finite_number(v) for v in scores.values()):
        return "malformed", "quality.scores is not an object of finite numbers"
    return ("flagged" if flags else "passed"), ""


def _finite_number(value: Any) -> bool:
    # an int too large for a float (401 digits in JSON) makes math.isfinite raise OverflowError: malformed
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


@dataclass
class QualityTally:
    """What one (rank, worker) read in one epoch: samples of the wanted pairs, and how many were flagged (skipped
    when ``skip_flagged``), unchecked (kept) or carried a malformed field (kept as unchecked)."""

    read: int = 0
    flagged: int = 0
    unchecked: int = 0
    malformed: int = 0

    def count(self, state: str) -> None:
        self.read += 1
        if state in ("flagged", "unchecked", "malformed"):
            setattr(self, state, getattr(self, state) + 1)

    def line(self, skip_flagged: bool) -> str:
        # read: the samples of the wanted pairs this worker took from its shards, its shuffle buffer included
        flagged = (f"skipped {self.flagged} flagged samples of {self.read} read" if skip_flagged
                   else f"kept {self.flagged} flagged samples of {self.read} read (data.skip_flagged: false)")
        return (f"{flagged}; {self.unchecked + self.malformed} never quality-checked, kept"
                + (f" ({self.malformed} with a malformed quality field)" if self.malformed else ""))
