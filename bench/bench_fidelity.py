"""Issue 18's speed bound for the whole default pipeline: CPU per person of this checkout against a baseline commit.

Each person runs the whole default pipeline of ``vitonprep build`` (load, pose, person checks, parsing, DensePose
approximation, cloth mask, derive, caption, encode, quality stage) through ``Pipeline.run``, once with the code of
this checkout ("new") and once with the code of ``--baseline`` (default aee6528, the code before issue 18; "old").

How: the baseline is checked out as a detached git worktree at ``--base-dir`` (made when absent, reused when it is
already at that commit; never inside this repository; ``--remove`` deletes it at the end). Two long-lived child
processes run this script with ``--child``, each with ``PYTHONPATH`` naming one tree, so each imports vitonprep
from its own tree (the child prints which file it imported, and the parent checks it). Each child builds one
pipeline per category under the build's one-thread compute policy (``runner.single_threaded_compute``) and runs
every person once before timing (model graphs, first calls, caches: not per-person cost). Then, in every round,
the parent asks the two children in turn for the same person (which child goes first alternates by person and
round, so the machine's drift falls on both alike) and each child times ``Pipeline.run`` of it with its process
CPU time (``time.process_time``: every thread of the child, mediapipe's graph threads included; not wall time).

Persons (768x1024 after the pipeline's fit), by the category they are built under: upper_body: the 5 bundled
VITON-HD persons (data/samples, their pairs.txt), the 3 official VITON-HD persons (data/vitonhd-official,
test_pairs.txt) and the 2 DressCode persons in a top and trousers with a DressCode top; lower_body: the same 2
DressCode persons with a pair of DressCode trousers; dresses: the 2 DressCode persons in a dress with a DressCode
dress (data/dresscode-photos/categories.csv).

Prints per category and overall the ratio new/old of the summed CPU per round: the median over rounds, and the
spread (min-max) over rounds, with the median CPU ms per person of each side; then the per-person medians and
each stage's wall time per person (``Pipeline.run``'s timings), to see where a difference comes from.

Usage: ``python bench/bench_fidelity.py [--rounds N] [--baseline COMMIT] [--new DIR | --new-rev COMMIT]
[--remove]`` (defaults 5 rounds, aee6528, this checkout as it is on disk, uncommitted edits included: the commit
and the edited files are printed; ``--new-rev`` times a commit exactly, from a worktree of its own).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
CATEGORIES = ("upper_body", "lower_body", "dresses")


# ---------------------------------------------------------------- inputs

def persons() -> dict[str, list[tuple[str, Path, Path]]]:
    """category -> [(name, person photo, garment photo)]."""
    samples, official, dc = DATA / "samples", DATA / "vitonhd-official", DATA / "dresscode-photos"
    out: dict[str, list[tuple[str, Path, Path]]] = {c: [] for c in CATEGORIES}
    for root, pairs in ((samples, "pairs.txt"), (official, "test_pairs.txt")):
        for line in (root / pairs).read_text().split("\n"):
            if line.strip():
                p, c = line.split()
                out["upper_body"].append((Path(p).stem, root / "person" / p if (root / "person").is_dir()
                                          else root / "image" / p, root / "cloth" / c))
    garments = {"upper_body": ("048554_1", "049805_1"), "lower_body": ("051412_1", "051827_1"),
                "dresses": ("053290_1", "053742_1")}
    for line in (dc / "categories.csv").read_text().split("\n")[1:]:
        if not line.startswith("person/"):
            continue
        file, _, cats, _ = line.split(",", 3)
        for cat in cats.split("+"):
            cloth = garments[cat][len(out[cat]) % 2]
            out[cat].append((f"{Path(file).stem}-{cat}", dc / file, dc / "cloth" / f"{cloth}.jpg"))
    return out


def make_raw(tmp: Path, plan: dict[str, list[tuple[str, Path, Path]]]) -> dict[str, str]:
    """One raw folder (person/, cloth/, pairs.txt) per category; category -> folder."""
    dirs = {}
    for cat, rows in plan.items():
        raw = tmp / cat
        (raw / "person").mkdir(parents=True)
        (raw / "cloth").mkdir()
        lines = []
        for name, person, cloth in rows:
            shutil.copy(person, raw / "person" / f"{name}.jpg")
            shutil.copy(cloth, raw / "cloth" / f"c-{name}.jpg")
            lines.append(f"{name}.jpg c-{name}.jpg")
        (raw / "pairs.txt").write_text("\n".join(lines) + "\n")
        dirs[cat] = str(raw)
    return dirs


# ---------------------------------------------------------------- the child: one tree's pipelines

def child(spec_path: str) -> None:
    """Reads person keys on stdin, answers each with ``{"cpu": seconds, "ok": bool, "stages": {name: wall s}}``
    on stdout."""
    # imported here: this process's PYTHONPATH names the tree under test (the parent imports no vitonprep)
    import vitonprep
    from vitonprep.config import load_pipeline_config
    from vitonprep.errors import SampleError
    from vitonprep.raw import plan_raw
    from vitonprep.runner import single_threaded_compute
    from vitonprep.stages import Pipeline

    dirs = json.loads(Path(spec_path).read_text())
    with single_threaded_compute():
        pipes, items = {}, {}
        for cat, raw in dirs.items():
            pipes[cat] = Pipeline.from_config(load_pipeline_config("default", {"category": cat}))
            pipes[cat].setup()
            for item in plan_raw(Path(raw)).items:
                items[item.key] = (cat, item)

        def run(key: str) -> tuple[float, bool, dict[str, float]]:
            cat, item = items[key]
            stages: dict[str, float] = {}
            t0 = time.process_time()
            try:
                pipes[cat].run(item, stages)
                ok = True
            except SampleError:
                ok = False
            return time.process_time() - t0, ok, stages

        for key in items:  # first calls are not per-person cost
            run(key)
        keys = {cat: [k for k, (c, _) in items.items() if c == cat] for cat in dirs}
        print(json.dumps({"vitonprep": vitonprep.__file__, "keys": keys}), flush=True)
        for line in sys.stdin:
            cpu, ok, stages = run(line.strip())
            print(json.dumps({"cpu": cpu, "ok": ok, "stages": stages}), flush=True)
        for pipe in pipes.values():
            pipe.close()


class Child:
    """A ``--child`` process importing vitonprep from ``tree``."""

    def __init__(self, tree: Path, spec: Path, log: Path):
        env = dict(os.environ, PYTHONPATH=str(tree))
        self.log = open(log, "w")  # the library's log lines; a pipe nobody reads would fill and block the child
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child", str(spec)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
                                     env=env, cwd=tempfile.gettempdir())
        self.tree = tree

    def ready(self) -> dict[str, list[str]]:
        hello = self._read()
        got = Path(hello["vitonprep"]).resolve()
        if not got.is_relative_to(self.tree.resolve()):
            raise SystemExit(f"the child for {self.tree} imported vitonprep from {got}")
        return hello["keys"]

    def time(self, key: str) -> dict:
        self.proc.stdin.write(key + "\n")
        self.proc.stdin.flush()
        return self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"the child for {self.tree} exited (code {self.proc.wait()}); see {self.log.name}")
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()
        self.log.close()


# ---------------------------------------------------------------- the baseline tree

def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def worktree(commit: str, where: Path) -> Path:
    """A detached worktree of this repository at ``commit`` (reused when it is already there)."""
    want = git("rev-parse", f"{commit}^{{commit}}")
    if where.resolve().is_relative_to(ROOT):
        raise SystemExit(f"{where} lies inside the repository; put the baseline tree elsewhere")
    if where.exists():
        if git("rev-parse", "HEAD", cwd=where) != want:
            raise SystemExit(f"{where} exists at another commit than {commit}; remove it or pick --base-dir")
        return where
    git("worktree", "add", "--detach", str(where), want)
    return where


# ---------------------------------------------------------------- main

def spread(xs: list[float]) -> str:
    return f"{statistics.median(xs):.3f} (rounds {min(xs):.3f}-{max(xs):.3f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--baseline", default="aee6528")
    ap.add_argument("--base-dir", type=Path, default=Path(tempfile.gettempdir()) / "bench_base")
    ap.add_argument("--new", type=Path, default=ROOT, help="the tree timed as new (default: this checkout)")
    ap.add_argument("--new-rev", help="time this commit as new instead (a worktree beside the baseline's)")
    ap.add_argument("--remove", action="store_true", help="remove the worktrees made for the run at the end")
    ap.add_argument("--child")
    args = ap.parse_args()
    if args.child:
        return child(args.child)
    base = worktree(args.baseline, args.base_dir)
    if args.new_rev:  # a commit exactly, without the uncommitted edits of the checkout
        sha = git("rev-parse", "--short", f"{args.new_rev}^{{commit}}")
        args.new = worktree(sha, Path(tempfile.gettempdir()) / f"bench_new-{sha}")
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "vitonprep", cwd=args.new)
    print(f"new: {args.new} at {git('rev-parse', '--short', 'HEAD', cwd=args.new)}"
          f"{' + uncommitted edits of ' + ', '.join(x.split()[-1] for x in dirty.splitlines()) if dirty else ''}; "
          f"old: {base} at {git('rev-parse', '--short', 'HEAD', cwd=base)}")
    plan = persons()
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        spec = tmp / "spec.json"
        spec.write_text(json.dumps(make_raw(tmp / "raw", plan)))
        kids = {"old": Child(base, spec, tmp / "old.log"), "new": Child(args.new, spec, tmp / "new.log")}
        try:
            keys = {side: kid.ready() for side, kid in kids.items()}
            if keys["old"] != keys["new"]:
                raise SystemExit("the two trees plan different persons")
            cat_of = {k: cat for cat, ks in keys["new"].items() for k in ks}
            cpu = {side: {k: [] for k in cat_of} for side in kids}
            failed: dict[str, set[str]] = {side: set() for side in kids}
            stages: dict[str, dict[str, float]] = {side: {} for side in kids}
            for r in range(args.rounds):
                for i, key in enumerate(cat_of):
                    for side in (("old", "new") if (r + i) % 2 == 0 else ("new", "old")):
                        got = kids[side].time(key)
                        cpu[side][key].append(got["cpu"])
                        if not got["ok"]:
                            failed[side].add(key)
                        for name, sec in got["stages"].items():
                            stages[side][name] = stages[side].get(name, 0.0) + sec
                print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
        finally:
            for kid in kids.values():
                kid.close()
    if args.remove:
        for tree in {base, args.new} - {ROOT}:
            git("worktree", "remove", "--force", str(tree))
    print(f"{len(cat_of)} persons x {args.rounds} rounds, default pipeline, one compute thread, process CPU per "
          f"person (warm); ratio new/old of the summed CPU per round: median (spread over rounds)")
    groups = {cat: [k for k in cat_of if cat_of[k] == cat] for cat in CATEGORIES} | {"all": list(cat_of)}
    for name, ks in groups.items():
        if not ks:
            continue
        per_round = {side: [sum(cpu[side][k][r] for k in ks) for r in range(args.rounds)] for side in kids}
        ratios = [n / o for n, o in zip(per_round["new"], per_round["old"], strict=True)]
        ms = {side: 1000 * statistics.median(per_round[side]) / len(ks) for side in kids}
        print(f"  {name:10s} {len(ks):2d} persons: old {ms['old']:6.0f} ms, new {ms['new']:6.0f} ms per person -> "
              f"ratio {spread(ratios)}")
    print("per person (median ms old -> new, ratio):")
    for k, cat in cat_of.items():
        o, n = statistics.median(cpu["old"][k]), statistics.median(cpu["new"][k])
        print(f"  {cat:10s} {k.split('__')[0]:20s} {1000 * o:6.0f} -> {1000 * n:6.0f}  {n / o:.3f}")
    n = args.rounds * len(cat_of)
    print("per stage (wall ms per person, summed over all persons and rounds; one thread, so close to CPU):")
    for name in stages["new"]:
        o, n_ = stages["old"].get(name, 0.0), stages["new"][name]
        print(f"  {name:12s} {1000 * o / n:6.1f} -> {1000 * n_ / n:6.1f}" + (f"  {n_ / o:.3f}" if o else ""))
    for side, keys_failed in failed.items():
        if keys_failed:
            print(f"{side}: no sample (SampleError) for {sorted(keys_failed)}")


if __name__ == "__main__":
    main()
