"""Heuristic human parsing (``parse_person``): CPU per image against the parser of a baseline commit, next to the
``MediapipePose`` call it needs, and mIoU over HR-VITON's 13 groups against the official CIHP parses.

Images: the 5 VITON-HD samples, the 4 DressCode full-body photos (2 dresses, parsed with ``category="dresses"``)
and the 4 labelled persons (3 official ``image-parse`` + v3 reference ``image-parse-v3`` 00006_00), all
768x1024.

Timing: the baseline parser is the package ``vitonprep/backends/parsing_heuristic`` as committed at
``--baseline`` (read with ``git show`` from this repository into a temporary folder, imported under another
name); both parsers and the pose call run in this process, under the build's one-thread compute policy
(``runner.single_threaded_compute``), on the same pose results, in interleaved rounds (round r times every image
with the current parser, the baseline and the pose call in turn; the machine's load drifts, and a figure timed
once at the end would carry the drift into the ratio). CPU time (``time.process_time``); per call the median
over rounds, summed over the images; the ratio new/old is the median of the rounds' ratios. "per person" adds
the pose call to both sides: the parser's share of a person's CPU in a build is smaller still (the build also
runs the person checks, DensePose approximation, cloth mask, derive and encode).

Usage: ``python bench/bench_parsing.py [--rounds N] [--baseline COMMIT]`` (defaults 7, aee6528: the parser
before issue 18).
"""

from __future__ import annotations

import argparse
import csv
import importlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vitonprep.backends.parsing_heuristic import parse_person, parsing_miou  # noqa: E402
from vitonprep.backends.pose_mediapipe import MediapipePose  # noqa: E402
from vitonprep.runner import single_threaded_compute  # noqa: E402

DATA = ROOT / "data"
PACKAGE = "vitonprep/backends/parsing_heuristic"
#: labelled persons: (image, official CIHP parse)
LABELLED = {
    "00891_00": (DATA / "vitonhd-official/image/00891_00.jpg", DATA / "vitonhd-official/image-parse/00891_00.png"),
    "03615_00": (DATA / "vitonhd-official/image/03615_00.jpg", DATA / "vitonhd-official/image-parse/03615_00.png"),
    "07445_00": (DATA / "vitonhd-official/image/07445_00.jpg", DATA / "vitonhd-official/image-parse/07445_00.png"),
    "00006_00": (DATA / "vitonhd-v3-reference/image/00006_00.jpg",
                 DATA / "vitonhd-v3-reference/image-parse-v3/00006_00.png"),
}
GROUPS = ("bg", "hair", "face", "upper", "bottom", "l_arm", "r_arm", "l_leg", "r_leg", "l_shoe", "r_shoe",
          "socks", "noise")


def load(path: Path) -> np.ndarray:
    im = Image.open(path).convert("RGB")
    if im.size != (768, 1024):
        im = im.resize((768, 1024), Image.BILINEAR)
    return np.asarray(im)


def dresscode_categories() -> dict[str, str]:
    cats = {}
    with open(DATA / "dresscode-photos" / "categories.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["kind"] == "person":
                cats[Path(row["file"]).stem] = "dresses" if row["category"] == "dresses" else "upper_body"
    return cats


def images() -> list[tuple[str, np.ndarray, str]]:
    cats = dresscode_categories()
    out = [(p.stem, load(p), "upper_body") for p in sorted((DATA / "samples" / "person").glob("*.jpg"))]
    out += [(p.stem, load(p), cats.get(p.stem, "upper_body"))
            for p in sorted((DATA / "dresscode-photos" / "person").glob("*.jpg"))]
    out += [(k, load(img), "upper_body") for k, (img, _) in LABELLED.items()]
    return out


def baseline_parser(commit: str, folder: Path):
    """``parse_person`` of the parser package at ``commit``, imported as ``_baseline_parsing_heuristic``."""
    name = "_baseline_parsing_heuristic"
    files = subprocess.run(["git", "-C", str(ROOT), "ls-tree", "--name-only", f"{commit}:{PACKAGE}"],
                           check=True, capture_output=True, text=True).stdout.split()
    (folder / name).mkdir()
    for f in files:
        if f.endswith(".py"):
            text = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:{PACKAGE}/{f}"], check=True,
                                  capture_output=True, text=True).stdout
            (folder / name / f).write_text(text.replace("vitonprep.backends.parsing_heuristic", name))
    sys.path.insert(0, str(folder))
    return importlib.import_module(name).parse_person


def cpu_ms(fn) -> float:
    t0 = time.process_time()
    fn()
    return (time.process_time() - t0) * 1000.0


def timing(imgs, results, old_parse, pose, rounds: int) -> None:
    calls = {"new": lambda rgb, p, cat: parse_person(rgb, p, category=cat),
             "old": lambda rgb, p, cat: old_parse(rgb, p, category=cat),
             "pose": lambda rgb, p, cat: pose(rgb)}
    for name, rgb, cat in imgs:  # warm-up
        for call in calls.values():
            call(rgb, results[name], cat)
    per_round = {k: [] for k in calls}  # the round's CPU summed over the images
    per_image = {k: {name: [] for name, _, _ in imgs} for k in calls}
    for _ in range(rounds):
        total = dict.fromkeys(calls, 0.0)
        for name, rgb, cat in imgs:
            for k, call in calls.items():
                t = cpu_ms(lambda call=call, rgb=rgb, name=name, cat=cat: call(rgb, results[name], cat))
                total[k] += t
                per_image[k][name].append(t)
        for k in calls:
            per_round[k].append(total[k])
    n = len(imgs)
    med = {k: sum(statistics.median(v) for v in per_image[k].values()) / n for k in calls}
    ratio = statistics.median(a / b for a, b in zip(per_round["new"], per_round["old"], strict=True))
    person = statistics.median((a + p) / (b + p) for a, b, p in
                               zip(per_round["new"], per_round["old"], per_round["pose"], strict=True))
    print(f"{n} images 768x1024, {rounds} interleaved rounds, one compute thread (CPU ms per image: median over "
          "rounds, mean over images)")
    print(f"{'parse_person, this tree':34s} {med['new']:8.1f}")
    print(f"{'parse_person, baseline':34s} {med['old']:8.1f}")
    print(f"{'MediapipePose()(rgb)':34s} {med['pose']:8.1f}")
    print(f"ratio new / old, parser:            {ratio:.3f}")
    print(f"ratio new / old, pose + parser:     {person:.3f}")


def accuracy(results, old_parse) -> None:
    print("\nmIoU over HR-VITON's 13 groups (groups present in either map), MediapipePose -> parse_person")
    rows = {}
    for name, (img, parse) in LABELLED.items():
        truth = np.asarray(Image.open(parse))
        rgb = load(img)
        rows[name] = (parsing_miou(parse_person(rgb, results[name]), truth),
                      parsing_miou(old_parse(rgb, results[name]), truth)[0])
    present = sorted({g for (_, per), _ in rows.values() for g in per})
    print(f"{'image':10s} {'old':>6s} {'mIoU':>6s} " + " ".join(f"{GROUPS[g]:>7s}" for g in present))
    for name, ((m, per), old) in rows.items():
        print(f"{name:10s} {old:6.3f} {m:6.3f} "
              + " ".join(f"{per[g]:7.2f}" if g in per else f"{'-':>7s}" for g in present))
    official = [k for k in rows if k != "00006_00"]
    print(f"mean of the 3 official persons: old {np.mean([rows[k][1] for k in official]):.3f}, "
          f"this tree {np.mean([rows[k][0][0] for k in official]):.3f}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--baseline", default="aee6528", help="commit of the parser to compare with")
    args = ap.parse_args(argv)
    imgs = images()
    with tempfile.TemporaryDirectory() as tmp, single_threaded_compute():
        old_parse = baseline_parser(args.baseline, Path(tmp))
        pose = MediapipePose().setup()
        results = {name: pose(rgb) for name, rgb, _ in imgs}
        timing(imgs, results, old_parse, pose, args.rounds)
        accuracy(results, old_parse)
        pose.close()


if __name__ == "__main__":
    main()
