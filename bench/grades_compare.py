"""Two gradings of the evaluation set side by side (data/eval/README.md): the share of samples graded wrong per part
and category, before and after a pipeline change, over the samples graded in both files only.

The default compares ``data/eval/grades.csv`` (the maps of the commits in its ``code`` column) with
``data/eval/grades_after.csv`` (the same samples rebuilt after issue 18 and regraded blind). Each table cell is
``wrong/graded`` of one file; a part's ``all`` row counts every category. The grade moves (wrong -> sound and back)
follow, so that a share that did not move but swapped samples is seen.

    python bench/grades_compare.py [--before FILE] [--after FILE] [--part tuned,held_out,held_out_v2|all]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import eval_set  # noqa: E402  (bench/eval_set.py: the set's files and categories)

PARTS = eval_set.PARTS
GRADES = ("good", "usable", "wrong")
SOUND = ("good", "usable")
#: the columns this script reads
COLUMNS = ("set", "category", "key", "part", "grade")

Key = tuple[str, str, str]


@dataclass(frozen=True)
class Pair:
    """One sample graded in both files."""

    key: Key
    part: str
    before: str
    after: str

    @property
    def category(self) -> str:
        return self.key[1]


def read_grades(path: Path) -> dict[Key, dict[str, str]]:
    """(set, category, key) -> row; a file that lists a sample twice or a grade outside GRADES is refused."""
    out: dict[Key, dict[str, str]] = {}
    for row in eval_set.read_csv(path):
        missing = [c for c in COLUMNS if row.get(c) is None]
        if missing:
            raise ValueError(f"{path}: no column {', '.join(missing)} (grades.csv's columns: data/eval/README.md)")
        k = (row["set"], row["category"], row["key"])
        if k in out:
            raise ValueError(f"{path}: {'/'.join(k)} is graded twice")
        if row["grade"] not in GRADES:
            raise ValueError(f"{path}: {'/'.join(k)}: grade {row['grade']!r} is not one of {', '.join(GRADES)}")
        out[k] = row
    return out


def pair_up(before: dict[Key, dict[str, str]], after: dict[Key, dict[str, str]]) -> list[Pair]:
    """The samples graded in both, in the before file's order; a sample whose part differs between them is refused
    (the files would not describe the same split)."""
    pairs = []
    for k, b in before.items():
        a = after.get(k)
        if a is None:
            continue
        if a["part"] != b["part"]:
            raise ValueError(f"{'/'.join(k)}: part {b['part']} before, {a['part']} after")
        pairs.append(Pair(k, b["part"], b["grade"], a["grade"]))
    return pairs


def table(pairs: list[Pair], parts: tuple[str, ...]) -> dict[str, dict[str, dict[str, list[int]]]]:
    """part -> category (and ``all``) -> {"before": [wrong, n], "after": [wrong, n], "to_sound": [k, wrong before],
    "to_wrong": [k, sound before]}; a category without a sample in both is left out."""
    out: dict[str, dict[str, dict[str, list[int]]]] = {}
    for part in parts:
        rows = {}
        for cat in (*eval_set.CATEGORIES, "all"):
            sel = [p for p in pairs if p.part == part and cat in ("all", p.category)]
            if not sel:
                continue
            was_wrong = [p for p in sel if p.before == "wrong"]
            was_sound = [p for p in sel if p.before in SOUND]
            rows[cat] = {"before": [len(was_wrong), len(sel)],
                         "after": [sum(p.after == "wrong" for p in sel), len(sel)],
                         "to_sound": [sum(p.after in SOUND for p in was_wrong), len(was_wrong)],
                         "to_wrong": [sum(p.after == "wrong" for p in was_sound), len(was_sound)]}
        if rows:
            out[part] = rows
    return out


def distribution(pairs: list[Pair], part: str, which: str) -> str:
    counts = Counter(getattr(p, which) for p in pairs if p.part == part)
    return " / ".join(str(counts[g]) for g in GRADES)


def share(k: int, n: int) -> str:
    return f"{100 * k / n:5.1f} % ({k}/{n})" if n else "-"


def print_table(pairs: list[Pair], parts: tuple[str, ...], names: tuple[str, str]) -> None:
    tab = table(pairs, parts)
    print(f"share of samples graded wrong, {names[0]} -> {names[1]} (samples graded in both)")
    print(f"{'part':<12} {'category':<11} | {'before':>18} | {'after':>18} | {'wrong -> sound':>14} | "
          f"{'sound -> wrong':>14}")
    for part, rows in tab.items():
        for cat, r in rows.items():
            print(f"{part:<12} {cat:<11} | {share(*r['before']):>18} | {share(*r['after']):>18} | "
                  f"{'%d/%d' % tuple(r['to_sound']):>14} | {'%d/%d' % tuple(r['to_wrong']):>14}")
    print("\ngood / usable / wrong")
    for part in tab:
        print(f"{part:<12} before {distribution(pairs, part, 'before'):<12} after {distribution(pairs, part, 'after')}")


def parse_parts(value: str) -> tuple[str, ...]:
    """``--part``: a comma list of PARTS or ``all`` (every part: this reads grades only)."""
    return eval_set.parse_parts(value, PARTS)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", type=Path, default=eval_set.EVAL / "grades.csv")
    ap.add_argument("--after", type=Path, default=eval_set.EVAL / "grades_after.csv")
    ap.add_argument("--part", type=parse_parts, default=PARTS, metavar="PART[,PART...]",
                    help=f"a comma list of {', '.join(PARTS)} or all (default all: this reads grades only)")
    args = ap.parse_args(argv)
    try:
        pairs = pair_up(read_grades(args.before), read_grades(args.after))
    except (OSError, ValueError) as exc:
        print(f"grades compare: {exc}", file=sys.stderr)
        return 2
    if not any(p.part in args.part for p in pairs):
        print(f"grades compare: no sample of {', '.join(args.part)} is graded in both {args.before} and {args.after}")
        return 0
    print_table(pairs, args.part, (args.before.name, args.after.name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
