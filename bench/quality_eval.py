"""The quality checks against the graded evaluation set (data/eval/README.md; issue 17's targets).

Runs ``vitonprep.quality.check_shards`` with the pipeline's thresholds over the built samples of the set (the cache
``bench/eval_set.py`` fills; the bundled sets are built into a temporary folder when the cache lacks them), joins
the flags with ``data/eval/grades.csv`` and prints, per check and for any check:

- recall: the share of WRONG samples it flags;
- false-flag rate: the share of SOUND samples (good or usable) it flags;

one column pair per part asked with ``--part``: a comma list of ``tuned``, ``held_out`` (v1, seen during tuning),
``held_out_v2`` (graded blind after tuning began) or ``all`` (the issue's targets: recall >= 80 % and false flags
<= 20 % on the held-out rows). ``all`` is every part open to tuning (tuned and v1 held_out): ``held_out_v2`` is
reported only when named, so that no habitual ``--part all`` of whoever tunes the checks spends the blind rows.
Whoever tunes the checks runs the default ``--part tuned``. It also prints the share of wrong samples
per category (a figure of the build, not of the checks).

    python bench/quality_eval.py [--part tuned,held_out,held_out_v2|all] [--samples] [--cache DIR]
        [--grades FILE] [--pipeline default] [--json OUT]

``--grades data/eval/grades_after.csv --cache DIR`` measures the checks on a newer build (DIR, filled by
``bench/eval_set.py --cache DIR`` at the commit of that file's ``code`` column) with the grades made on it; a
sample that file does not grade is left out.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import eval_set  # noqa: E402  (bench/eval_set.py: the set's files, its cache and the bundled builds)

from vitonprep.config import pipeline_path  # noqa: E402
from vitonprep.quality import CHECKS, QualityConfig, check_shards, load_quality_config  # noqa: E402

#: grades.csv's `part` values, in the report's column order (data/eval/README.md)
PARTS = eval_set.PARTS
#: what ``--part all`` means: the parts already looked at while tuning (held_out_v2 only when named)
OPEN_PARTS = ("tuned", "held_out")
BLIND_PARTS = ("held_out_v2",)
SOUND = ("good", "usable")
TARGET_RECALL, TARGET_FALSE_FLAG = 0.80, 0.20


@dataclass(frozen=True)
class Judged:
    """One graded sample with the checks that flagged it (None: not checked - not built or not decodable)."""

    set: str
    category: str
    key: str
    part: str
    grade: str
    flags: frozenset[str] | None

    @property
    def sound(self) -> bool:
        return self.grade in SOUND


@dataclass(frozen=True)
class Rate:
    """k of n samples flagged; share is None when n is 0."""

    k: int
    n: int

    @property
    def share(self) -> float | None:
        return self.k / self.n if self.n else None

    def __str__(self) -> str:
        return "-" if not self.n else f"{100 * self.k / self.n:5.1f} % ({self.k}/{self.n})"


def flagged_by(row: Judged, check: str | None) -> bool:
    """Flagged by ``check``, or by any check when it is None."""
    assert row.flags is not None
    return bool(row.flags) if check is None else check in row.flags


def rates(rows: list[Judged], check: str | None = None) -> tuple[Rate, Rate]:
    """(recall over the wrong samples, false-flag rate over the sound ones) among the checked rows."""
    checked = [r for r in rows if r.flags is not None]
    wrong = [r for r in checked if not r.sound]
    sound = [r for r in checked if r.sound]
    return (Rate(sum(flagged_by(r, check) for r in wrong), len(wrong)),
            Rate(sum(flagged_by(r, check) for r in sound), len(sound)))


def wrong_share(rows: list[Judged]) -> dict[str, Rate]:
    """Per category (and ``all``): the share of graded samples graded wrong (checked or not)."""
    out = {}
    for cat in (*eval_set.CATEGORIES, "all"):
        sel = [r for r in rows if cat in ("all", r.category)]
        out[cat] = Rate(sum(not r.sound for r in sel), len(sel))
    return out


def load_grades(path: Path, parts: tuple[str, ...]) -> list[dict[str, str]]:
    rows = eval_set.read_csv(path)
    return [r for r in rows if r["part"] in parts]


def shard_dirs(groups: set[tuple[str, str]], cache: Path, tmp: Path, workers: int) -> dict[tuple[str, str], Path]:
    """The built shards of each (set, category); bundled sets missing from the cache are built into ``tmp``."""
    found, missing = {}, []
    for s, cat in sorted(groups):
        d = cache / "shards" / f"{s}-{cat}"
        if d.is_dir():
            found[(s, cat)] = d
        elif s in eval_set.PUBLIC_SOURCES:
            print(f"quality eval: no built shards at {d}: run bench/eval_set.py (needs the snapshots); "
                  f"its rows are skipped")
        else:
            missing.append((s, cat))
    if missing:
        print(f"quality eval: building the bundled sets {missing} into {tmp}")
        eval_set.main(["--cache", str(tmp), "--only", "bundled", "--workers", str(workers)])
        found.update({g: tmp / "shards" / f"{g[0]}-{g[1]}" for g in missing})
    return found


def built_commits(dirs: dict[tuple[str, str], Path]) -> dict[str, str]:
    """(set-category) -> commit, from the built.json beside each group's shards folder."""
    out = {}
    for (s, cat), d in dirs.items():
        label = f"{s}-{cat}"
        out[label] = built_with(d.parent.parent).get(label, "unknown code")
    return out


def built_with(cache: Path) -> dict[str, str]:
    """(set-category) -> the vitonprep commit that built it, from the cache's built.json (empty if unreadable)."""
    try:
        sets = json.loads((cache / "built.json").read_text(encoding="utf-8")).get("sets")
    except (OSError, ValueError, AttributeError):
        return {}
    return {str(k): str(v) for k, v in sets.items()} if isinstance(sets, dict) else {}


def stale_groups(grades: list[dict[str, str]], built: dict[str, str]) -> list[str]:
    """The set-category groups whose graded code differs from the code that built the samples checked now: their
    grades describe other maps (regrade them, or rebuild at the graded commit)."""
    graded: dict[str, set[str]] = {}
    for r in grades:
        graded.setdefault(f"{r['set']}-{r['category']}", set()).add(r["code"])
    return [f"{g} (graded on {', '.join(sorted(codes))}, built with {built.get(g, 'unknown code')})"
            for g, codes in sorted(graded.items()) if codes != {built.get(g)}]


def judge(grades: list[dict[str, str]], dirs: dict[tuple[str, str], Path], config: QualityConfig) -> list[Judged]:
    """Each graded row with the checks that flag it now."""
    flags: dict[tuple[str, str], dict[str, frozenset[str]]] = {}
    for group, d in dirs.items():
        result = check_shards(d, config)
        flags[group] = {key: frozenset(f.check for f in rep.flags) for _, key, rep in result.results}
    return [Judged(r["set"], r["category"], r["key"], r["part"], r["grade"],
                   flags.get((r["set"], r["category"]), {}).get(r["key"])) for r in grades]


def report(rows: list[Judged], parts: tuple[str, ...]) -> dict:
    """The figures as a JSON-able dict: per part, per check (and ``any``) recall and false-flag rate."""
    by_part = {p: [r for r in rows if r.part == p] for p in parts}
    out: dict = {"parts": {}, "wrong_share": {}, "not_checked": [f"{r.set}/{r.category}/{r.key}" for r in rows
                                                                     if r.flags is None]}
    for p, sel in by_part.items():
        per = {}
        for check in (None, *CHECKS):
            recall, false_flag = rates(sel, check)
            per["any" if check is None else check] = {"recall": [recall.k, recall.n],
                                                      "false_flag": [false_flag.k, false_flag.n]}
        per_cat = {}
        for cat in eval_set.CATEGORIES:
            recall, false_flag = rates([r for r in sel if r.category == cat])
            per_cat[cat] = {"recall": [recall.k, recall.n], "false_flag": [false_flag.k, false_flag.n]}
        out["parts"][p] = {"checks": per, "categories": per_cat}
        out["wrong_share"][p] = {c: [v.k, v.n] for c, v in wrong_share(sel).items()}
    return out


def print_report(rep: dict) -> None:
    parts = list(rep["parts"])
    head = "".join(f" | {p + ' recall':>22} | {p + ' false flags':>22}" for p in parts)
    print(f"\n{'check':<20}{head}")
    print("-" * (20 + 50 * len(parts)))
    for check in ("any", *CHECKS):
        cells = "".join(f" | {Rate(*rep['parts'][p]['checks'][check]['recall'])!s:>22}"
                        f" | {Rate(*rep['parts'][p]['checks'][check]['false_flag'])!s:>22}" for p in parts)
        print(f"{check:<20}{cells}")
    print("\nany check, per category")
    for cat in eval_set.CATEGORIES:
        cells = "".join(f" | {Rate(*rep['parts'][p]['categories'][cat]['recall'])!s:>22}"
                        f" | {Rate(*rep['parts'][p]['categories'][cat]['false_flag'])!s:>22}" for p in parts)
        print(f"{cat:<20}{cells}")
    print("\nshare of samples graded wrong (the build, not the checks)")
    for cat in (*eval_set.CATEGORIES, "all"):
        print(f"{cat:<20}" + "".join(f" | {p:>11}: {Rate(*rep['wrong_share'][p][cat])!s:>18}" for p in parts))
    if rep["not_checked"]:
        print(f"\nnot checked (no built sample of that key): {', '.join(rep['not_checked'])}")
    print(f"\nissue 17's targets on the held-out rows: recall >= {TARGET_RECALL:.0%}, "
          f"false flags <= {TARGET_FALSE_FLAG:.0%}" + ("" if set(parts) & set(BLIND_PARTS) else
                                                        " (blind figures: --part held_out_v2, for the final report)"))


def print_samples(rows: list[Judged], grades: list[dict[str, str]]) -> None:
    """One line per graded sample: part, grade, the maps graded wrong and the checks that flag it."""
    wrong_maps = {(g["set"], g["category"], g["key"]): g["wrong_maps"] for g in grades}
    print(f"\n{'part':<11} {'grade':<7} {'sample':<52} {'graded wrong':<40} flagged by")
    for r in sorted(rows, key=lambda r: (r.part, r.category, r.grade, r.set, r.key)):
        flags = "(not checked)" if r.flags is None else ", ".join(sorted(r.flags)) or "-"
        print(f"{r.part:<11} {r.grade:<7} {f'{r.set}/{r.category}/{r.key}':<52} "
              f"{wrong_maps[(r.set, r.category, r.key)] or '-':<40} {flags}")


def parse_parts(value: str) -> tuple[str, ...]:
    """``--part``: a comma list of PARTS or ``all`` (= OPEN_PARTS: the blind part only when named)."""
    return eval_set.parse_parts(value, OPEN_PARTS)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", type=parse_parts, default=("tuned",), metavar="PART[,PART...]",
                    help=f"rows to report, a comma list of {', '.join(PARTS)} or all (= {','.join(OPEN_PARTS)}; "
                         "held_out_v2, the blind rows, only when named); default tuned, for tuning the checks")
    ap.add_argument("--cache", type=Path, default=eval_set.DEFAULT_CACHE)
    ap.add_argument("--grades", type=Path, default=eval_set.EVAL / "grades.csv",
                    help="the grades to join (default data/eval/grades.csv; grades_after.csv: the issue-18 regrading)")
    ap.add_argument("--pipeline", default="default", help="pipeline YAML (name or path) whose quality thresholds apply")
    ap.add_argument("--workers", "-j", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    ap.add_argument("--samples", action="store_true", help="also list every sample with its grade and its flags")
    args = ap.parse_args(argv)
    parts = args.part
    for p in set(parts) & set(BLIND_PARTS):
        print(f"quality eval: {p} rows are graded blind, for the final figures: do not tune the checks on them")
    grades = load_grades(args.grades, parts)
    config = load_quality_config(pipeline_path(args.pipeline))
    with tempfile.TemporaryDirectory(prefix="vitonprep-eval-") as tmp:
        dirs = shard_dirs({(r["set"], r["category"]) for r in grades}, args.cache.expanduser(), Path(tmp),
                          args.workers)
        rows = judge(grades, dirs, config)
        stale = stale_groups([r for r in grades if (r["set"], r["category"]) in dirs], built_commits(dirs))
    for g in stale:
        print(f"quality eval: WARNING {g}: the grades may not describe these maps")
    if all(r.flags is None for r in rows):
        print("quality eval: no graded sample could be checked; nothing to report")
        return 0
    rep = report(rows, parts)
    if args.samples:
        print_samples(rows, grades)
    print_report(rep)
    if args.json is not None:
        args.json.write_text(json.dumps(rep, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
