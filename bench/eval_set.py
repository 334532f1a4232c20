"""Build the graded evaluation set (data/eval/README.md) into a cache outside the repository.

The public photos come from the example folders of five try-on repositories (data/eval/sources.csv: repository,
commit, licence): three for the ``public`` set (tuned and v1 held-out rows), two others for the ``public_v2`` set
(the ``held_out_v2`` rows, graded blind). Their licences (CC BY-NC-SA 4.0; VITON-HD's CC BY-NC 4.0) do not let this
repository carry them, so this script reads
them from git snapshots of those repositories at the recorded commits (a ``git clone``, bare or not), checks each
file's git blob id against data/eval/photos.csv, lays them out as vitonprep raw folders (``person/``, ``cloth/``,
``pairs.txt``) per category and builds them with ``vitonprep build`` (the default pipeline). The bundled photos
(data/samples, data/dresscode-photos) are built the same way and data/vitonhd-official is converted, so that one
cache holds every graded sample:

    CACHE/photos/NAME                    extracted public photos
    CACHE/raw/SET-CATEGORY/              raw folders (copies; only the paired photos)
    CACHE/shards/SET-CATEGORY/           built shards (vitonhd-official: converted)
    CACHE/built.json                     the vitonprep commit each set was built with

A snapshot that is absent (CI has no network) is said in one line and the public sets that need it are skipped
(exit 0); the bundled sets are still built. Nothing is written inside the repository.

    python bench/eval_set.py [--cache DIR] [--only all|public|public_v2|bundled]
        [--catvton GITDIR] [--ootdiffusion GITDIR] [--idm-vton GITDIR] [--fitdit GITDIR] [--catvton-flux GITDIR]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EVAL = ROOT / "data" / "eval"
CATEGORIES = ("upper_body", "lower_body", "dresses")
DEFAULT_CACHE = Path("~/.cache/vitonprep/eval").expanduser()
#: where the `fetch` tool of this project's sessions puts snapshots; users pass their own clones instead
MIRROR = Path("/work/.mirror")
DEFAULT_SNAPSHOTS = {"catvton": MIRROR / "Zheng-Chong+CatVTON" / "repo",
                     "ootdiffusion": MIRROR / "levihsu+OOTDiffusion" / "repo",
                     "idm-vton": MIRROR / "yisol+IDM-VTON" / "repo",
                     "fitdit": MIRROR / "BoyuanJiang+FitDiT" / "repo",
                     "catvton-flux": MIRROR / "nftblackmagic+catvton-flux" / "repo"}
#: the held-out rule (data/eval/README.md): sha1 of the person file name, first byte below this cut -> held_out
HELD_OUT_CUT = 0x48
#: the part of every public_v2 sample: added after the tuning on the other rows began, graded blind
V2_PART = "held_out_v2"
#: the graded set's parts, in report order
PARTS = ("tuned", "held_out", V2_PART)


def parse_parts(value: str, all_parts: tuple[str, ...]) -> tuple[str, ...]:
    """A ``--part`` value: a comma list of PARTS or ``all`` (= ``all_parts``, which each script sets), in PARTS order,
    each once."""
    asked = {v.strip() for v in value.split(",") if v.strip()}
    unknown = sorted(asked - {*PARTS, "all"})
    if unknown or not asked:
        raise argparse.ArgumentTypeError(f"unknown part {', '.join(unknown) or '(none)'}: "
                                         f"give a comma list of {', '.join(PARTS)} or all")
    if "all" in asked:
        asked |= set(all_parts)
    return tuple(p for p in PARTS if p in asked)


@dataclass(frozen=True)
class EvalSet:
    """One raw folder to build: a set of photos in one category, with its pairs file in data/eval/pairs/."""

    name: str  # public | public_v2 | samples | dresscode-photos
    category: str
    photos: Path | None  # folder holding person/ and cloth/, or None for the extracted public photos

    @property
    def label(self) -> str:
        return f"{self.name}-{self.category}"

    @property
    def pairs_file(self) -> Path:
        return EVAL / "pairs" / f"{self.label}.txt"


PUBLIC_SETS = tuple(EvalSet("public", c, None) for c in CATEGORIES)
#: the second held-out part (data/eval/README.md): photos of two other repositories, every row held_out_v2
PUBLIC_V2_SETS = tuple(EvalSet("public_v2", c, None) for c in CATEGORIES)
#: the snapshots each group of public sets is extracted from (data/eval/sources.csv's `source`)
PUBLIC_SOURCES = {"public": ("catvton", "ootdiffusion", "idm-vton"), "public_v2": ("fitdit", "catvton-flux")}
BUNDLED_SETS = (EvalSet("samples", "upper_body", ROOT / "data" / "samples"),
                *(EvalSet("dresscode-photos", c, ROOT / "data" / "dresscode-photos") for c in CATEGORIES))
#: converted, not built: the official VITON-HD sample with its own pairs file
OFFICIAL = ROOT / "data" / "vitonhd-official"


def part_of(person_file: str) -> str:
    """tuned | held_out for a sample of the ``public`` set, by its person file name alone (so all its samples go
    together); every ``public_v2`` sample is held_out_v2 (V2_PART)."""
    return "held_out" if hashlib.sha1(person_file.encode("utf-8")).digest()[0] < HELD_OUT_CUT else "tuned"


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def read_pairs(path: Path) -> list[tuple[str, str]]:
    """The (person, cloth) file names of a pairs file (plain names without spaces)."""
    pairs = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if len(words) != 2:
            raise SystemExit(f"{path}:{n}: expected 'person_file cloth_file', got {line!r}")
        pairs.append((words[0], words[1]))
    return pairs


def git(gitdir: Path, *args: str) -> bytes:
    return subprocess.run(["git", "-C", str(gitdir), *args], check=True, capture_output=True).stdout


def missing_snapshots(snapshots: dict[str, Path], sources: tuple[str, ...]) -> list[str]:
    """One line per snapshot of ``sources`` that is absent or lacks its recorded commit (empty: all usable)."""
    problems = []
    for row in read_csv(EVAL / "sources.csv"):
        if row["source"] not in sources:
            continue
        where = snapshots[row["source"]]
        how = f"git clone https://github.com/{row['repo']} and pass its folder as --{row['source']}"
        if not where.exists():
            problems.append(f"snapshot of {row['repo']} not found at {where} ({how})")
            continue
        try:
            git(where, "cat-file", "-e", f"{row['commit']}^{{commit}}")
        except subprocess.CalledProcessError:
            problems.append(f"{where} has no commit {row['commit']} of {row['repo']} ({how}, then git fetch)")
    return problems


def extract_photos(snapshots: dict[str, Path], sources: tuple[str, ...], dest: Path) -> int:
    """Copy every public photo of data/eval/photos.csv from ``sources`` out of its snapshot, checking its blob id."""
    commits = {r["source"]: r["commit"] for r in read_csv(EVAL / "sources.csv")}
    dest.mkdir(parents=True, exist_ok=True)
    rows = [r for r in read_csv(EVAL / "photos.csv") if r["source"] in sources]
    for row in rows:
        gitdir, spec = snapshots[row["source"]], f"{commits[row['source']]}:{row['path']}"
        blob = git(gitdir, "rev-parse", spec).decode().strip()
        if blob != row["blob"]:
            raise SystemExit(f"{gitdir}: {row['path']} is blob {blob}, data/eval/photos.csv expects {row['blob']}")
        (dest / row["name"]).write_bytes(git(gitdir, "cat-file", "blob", blob))
    return len(rows)


def lay_out(eval_set: EvalSet, photos: Path, raw: Path) -> int:
    """A raw folder with only the paired photos (an unpaired person would become a person-only sample)."""
    if raw.exists():
        shutil.rmtree(raw)
    (raw / "person").mkdir(parents=True)
    (raw / "cloth").mkdir()
    pairs = read_pairs(eval_set.pairs_file)
    for person, cloth in pairs:
        for name, sub in ((person, "person"), (cloth, "cloth")):
            src = photos / name if eval_set.photos is None else photos / sub / name
            if not (raw / sub / name).exists():
                shutil.copyfile(src, raw / sub / name)
    shutil.copyfile(eval_set.pairs_file, raw / "pairs.txt")
    return len(pairs)


def vitonprep(*args: str) -> None:
    """Run the CLI of the checkout that holds this script (first on the path, before any installed copy)."""
    cmd = [sys.executable, "-m", "vitonprep", *args]
    print("$", " ".join(cmd[2:]), flush=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    subprocess.run(cmd, check=True, cwd=ROOT, env=env)


def code_commit() -> str:
    """The checkout's short commit, '+dirty' when its code differs from it (the grades' `code` column), or the
    $VITONPREP_EVAL_CODE of an exported tree that is no git checkout."""
    try:
        head = git(ROOT, "rev-parse", "--short", "HEAD").decode().strip()
        dirty = git(ROOT, "status", "--porcelain", "--untracked-files=no", "--", "vitonprep", "pipelines").strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        return os.environ.get("VITONPREP_EVAL_CODE", "unknown")
    return head + ("+dirty" if dirty else "")


def build_sets(sets: list[EvalSet], cache: Path, workers: int) -> list[str]:
    built = []
    for s in sets:
        raw, out = cache / "raw" / s.label, cache / "shards" / s.label
        n = lay_out(s, cache / "photos" if s.photos is None else s.photos, raw)
        print(f"{s.label}: {n} pairs", flush=True)
        vitonprep("build", str(raw), str(out), "--category", s.category, "--workers", str(workers),
                  "--sheet", "0", "--overwrite")
        built.append(s.label)
    return built


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"output folder (default {DEFAULT_CACHE})")
    for source, default in DEFAULT_SNAPSHOTS.items():
        env = f"VITONPREP_EVAL_{source.upper().replace('-', '_')}"
        ap.add_argument(f"--{source}", type=Path, default=Path(os.environ.get(env, default)),
                        help=f"git folder of the {source} snapshot (or ${env}; default {default})")
    ap.add_argument("--workers", "-j", type=int, default=1)
    ap.add_argument("--only", choices=("all", *PUBLIC_SOURCES, "bundled"), default="all",
                    help="public: the tuned and v1 held-out photos; public_v2: the held_out_v2 photos")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cache = args.cache.expanduser().resolve()
    if cache == ROOT or ROOT in cache.parents:
        print(f"eval set: --cache {cache} lies inside the repository; choose a folder outside it", file=sys.stderr)
        return 2
    snapshots = {s: getattr(args, s.replace("-", "_")) for s in DEFAULT_SNAPSHOTS}
    sets: list[EvalSet] = []
    for group, public_sets in (("public", PUBLIC_SETS), ("public_v2", PUBLIC_V2_SETS)):
        if args.only not in ("all", group):
            continue
        sources = PUBLIC_SOURCES[group]
        problems = missing_snapshots(snapshots, sources)
        for p in problems:
            print(f"eval set: skipped the {group} photos: {p}")
        if not problems:
            n = extract_photos(snapshots, sources, cache / "photos")
            print(f"eval set: {n} {group} photos -> {cache / 'photos'}")
            sets += public_sets
    if args.only in ("all", "bundled"):
        sets += BUNDLED_SETS
    commit = code_commit()
    built = build_sets(sets, cache, args.workers)
    if args.only in ("all", "bundled"):
        vitonprep("convert", "vitonhd", str(OFFICIAL), str(cache / "shards" / "vitonhd-official-upper_body"),
                  "--overwrite")
        built.append("vitonhd-official-upper_body")
    if not built:
        print("eval set: nothing built")
        return 0
    record = cache / "built.json"
    sets_by_code = json.loads(record.read_text()).get("sets", {}) if record.is_file() else {}
    sets_by_code = sets_by_code if isinstance(sets_by_code, dict) else {}
    sets_by_code.update({label: commit for label in built})
    record.write_text(json.dumps({"sets": sets_by_code}, indent=1, sort_keys=True) + "\n")
    print(f"eval set: built {', '.join(built) or 'nothing'} with vitonprep {commit} in {cache}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
