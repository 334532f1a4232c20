"""The result of the quality checks on one sample, in the JSON form meta.json carries (``"quality"``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Flag", "QualityReport", "Outcome"]


@dataclass(frozen=True)
class Flag:
    """A check that failed on a sample, with the reason a person can verify on the overlays."""

    check: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"check": self.check, "reason": self.reason}


@dataclass(frozen=True)
class Outcome:
    """One check's answer: its score, and the reason when the score crosses the threshold (None = passed)."""

    check: str
    score: float
    reason: str | None = None


@dataclass
class QualityReport:
    """Flags (empty = passed) and every computed score (a check without evidence has no score)."""

    flags: list[Flag] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.flags

    def add(self, outcome: Outcome) -> None:
        self.scores[outcome.check] = round(float(outcome.score), 4)
        if outcome.reason is not None:
            self.flags.append(Flag(outcome.check, outcome.reason))

    def to_dict(self) -> dict[str, Any]:
        """``{"flags": [{"check", "reason"}, ...], "scores": {name: number}}`` (JSON-safe: no NaN)."""
        return {"flags": [f.to_dict() for f in self.flags],
                "scores": {k: v for k, v in self.scores.items() if math.isfinite(v)}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "QualityReport":
        return cls([Flag(str(f["check"]), str(f["reason"])) for f in d.get("flags", [])],
                   {str(k): float(v) for k, v in d.get("scores", {}).items()})
