"""Heuristic human parsing (``parse_person``): time per image next to the ``MediapipePose`` call it needs, and
mIoU over HR-VITON's 13 groups against the official CIHP parses.

Images: the 5 VITON-HD samples, the 4 DressCode full-body photos (2 dresses, parsed with ``category="dresses"``)
and the 4 labelled persons (3 official ``image-parse`` + v3 reference ``image-parse-v3`` 00006_00), all
768x1024. Timing: one warm-up pass, then ``rounds`` passes; the per-image figure is the median over rounds,
the table shows the mean over images. Absolute times on a shared machine are noisy: the ratio of the two
calls, measured in the same process, is the figure that travels.

Usage: ``python bench/bench_parsing.py [rounds]`` (default 5).
"""

from __future__ import annotations

import csv
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vitonprep.backends.parsing_heuristic import parse_person, parsing_miou  # noqa: E402
from vitonprep.backends.pose_mediapipe import MediapipePose  # noqa: E402

DATA = ROOT / "data"
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


def ms(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000.0


def main(rounds: int = 5) -> None:
    imgs = images()
    pose = MediapipePose().setup()
    results = {name: pose(rgb) for name, rgb, _ in imgs}  # warm-up of the pose graphs
    for name, rgb, cat in imgs:  # warm-up of the parser
        parse_person(rgb, results[name], category=cat)
    t_pose, t_parse = [], []
    for name, rgb, cat in imgs:
        t_pose.append(statistics.median(ms(lambda rgb=rgb: pose(rgb)) for _ in range(rounds)))
        def parse(rgb=rgb, p=results[name], cat=cat):
            return parse_person(rgb, p, category=cat)

        t_parse.append(statistics.median(ms(parse) for _ in range(rounds)))
    pose.close()
    mp, mh = float(np.mean(t_pose)), float(np.mean(t_parse))
    print(f"{len(imgs)} images 768x1024, {rounds} rounds (median per image, mean over images)")
    print(f"{'call':34s} {'ms/image':>9s} {'max':>7s}")
    print(f"{'MediapipePose()(rgb)':34s} {mp:9.1f} {max(t_pose):7.1f}")
    print(f"{'parse_person(rgb, pose)':34s} {mh:9.1f} {max(t_parse):7.1f}")
    print(f"ratio parse_person / MediapipePose: {mh / mp:.2f}")

    print("\nmIoU over HR-VITON's 13 groups (groups present in either map), MediapipePose -> parse_person")
    rows = {}
    for name, (img, parse) in LABELLED.items():
        pred = parse_person(load(img), results[name])
        rows[name] = parsing_miou(pred, np.asarray(Image.open(parse)))
    present = sorted({g for _, per in rows.values() for g in per})
    print(f"{'image':10s} {'mIoU':>6s} " + " ".join(f"{GROUPS[g]:>7s}" for g in present))
    for name, (m, per) in rows.items():
        print(f"{name:10s} {m:6.3f} " + " ".join(f"{per[g]:7.2f}" if g in per else f"{'-':>7s}" for g in present))
    means = {g: float(np.mean([per[g] for _, per in rows.values() if g in per])) for g in present}
    overall = float(np.mean([m for m, _ in rows.values()]))
    print(f"{'mean':10s} {overall:6.3f} " + " ".join(f"{means[g]:7.2f}" for g in present))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
