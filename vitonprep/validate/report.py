"""What validation found: one ``Issue`` per problem, gathered in a ``ValidationReport``, and how many samples the
quality checks passed, flagged or never saw (meta.json ``quality``, vitonprep/validate/quality_field.py)."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

#: prefix of the check name of a quality flag's issue (``quality.left_right``): warnings, errors under --strict
QUALITY_FLAG = "quality."
#: the states of vitonprep.validate.quality_field.QualityField, in report order
QUALITY_STATES = ("passed", "flagged", "unchecked", "malformed")


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
    #: samples per quality state (QUALITY_STATES)
    quality: Counter[str] = field(default_factory=Counter)

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

    @property
    def flag_issues(self) -> list[Issue]:
        return [i for i in self.issues if i.check.startswith(QUALITY_FLAG)]

    def flags_as_errors(self) -> None:
        """``--strict``: every quality flag becomes an error (the dataset is then not sound)."""
        for issue in self.flag_issues:
            issue.level = "error"

    def quality_counts(self) -> dict[str, Any]:
        """Samples per quality state and flags per check (a sample flagged by two checks counts in both)."""
        by_check = Counter(i.check[len(QUALITY_FLAG):] for i in self.flag_issues)
        return {**{state: self.quality.get(state, 0) for state in QUALITY_STATES},
                "flags_by_check": dict(sorted(by_check.items()))}

    def to_dict(self) -> dict[str, Any]:
        return {
            "shard_dir": self.shard_dir,
            "ok": self.ok,
            "nshards": self.nshards,
            "nsamples": self.nsamples,
            "nerrors": len(self.errors),
            "nwarnings": len(self.warnings),
            "per_shard": self.per_shard,
            "quality": self.quality_counts(),
            "issues": [asdict(i) for i in self.issues],
        }
