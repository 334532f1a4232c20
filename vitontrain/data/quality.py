"""The ``quality`` field of a sample's meta.json as the trainer reads it: flagged samples are skipped
(``data.skip_flagged``), unchecked ones kept, and a malformed field never stops training.

The field is ``{"flags": [{"check", "reason"}, ...], "scores": {name: number}}`` (an empty ``flags`` list = passed);
no field = never checked. The rules are vitonprep's own reader, ``vitonprep.schema.read_quality`` (validate and
export use it too). Here a malformed field counts as unchecked, with a warning naming the sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vitonprep.schema import read_quality

__all__ = ["QualityTally", "quality_state"]


def quality_state(meta: Any) -> tuple[str, str]:
    """(``unchecked`` | ``passed`` | ``flagged`` | ``malformed``, what is malformed) of a decoded meta.json, by
    vitonprep's reader."""
    field = read_quality(meta)
    return field.state, field.problem


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
