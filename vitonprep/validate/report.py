"""What validation found: one ``Issue`` per problem, gathered in a ``ValidationReport``."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any


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
