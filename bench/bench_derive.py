"""Per-image time of the pure-CPU derive stage and of the model-free back-ends.

Functions timed (all on 768x1024 inputs):

* derive stage as ``vitonprep build`` runs it: ``agnostic_mask``, ``agnostic_image``, ``parse_agnostic``
  (vitonprep.derive.agnostic) and ``render_pose`` (vitonprep.derive.pose_render), plus their sum; when
  ``agnostic_image_and_mask`` exists it is timed too (one drawing for both outputs);
* ``approximate_densepose_parts`` (vitonprep.backends.densepose_approx);
* ``cloth_mask`` (vitonprep.backends.cloth_mask_opencv).

Persons: the 3 official VITON-HD persons with their official CIHP parse and OpenPose JSON keypoints, plus the
v3 reference 00006_00 (keypoints recovered from its official OpenPose render). Garments: the 6 official
VITON-HD cloth photos and the 16 ``data/samples/cloth`` photos (two of them square).

Timing: one warm-up pass, then ``rounds`` passes; per image the median over rounds, the table shows the mean
over images. Absolute times on a shared machine are noisy and machine dependent, so every figure is also given
as a ratio to a fixed reference operation measured in the same run (before and after the functions, averaged):
``cv2.GaussianBlur`` (sigma 3) of a 768x1024x3 uint8 image, 10 times ("ref" below).
OpenCV uses its default thread count unless ``--threads``
is given (the product target assumes 2 cores).

Usage: ``python bench/bench_derive.py [--rounds N] [--threads T]`` (default 7 rounds).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vitonprep.backends.cloth_mask_opencv import cloth_mask  # noqa: E402
from vitonprep.backends.densepose_approx import approximate_densepose_parts  # noqa: E402
from vitonprep.derive import agnostic as ag  # noqa: E402
from vitonprep.derive.body25 import OpenPoseKeypoints
from vitonprep.derive.pose_from_render import keypoints_from_render
from vitonprep.derive.pose_render import render_pose  # noqa: E402

DATA = ROOT / "data"
OFFICIAL = DATA / "vitonhd-official"
V3 = DATA / "vitonhd-v3-reference"


def _rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def persons() -> list[tuple[str, np.ndarray, np.ndarray, OpenPoseKeypoints]]:
    out = []
    for pid in ("00891_00", "03615_00", "07445_00"):
        d = json.loads((OFFICIAL / "openpose-json" / f"{pid}_keypoints.json").read_text())
        out.append((pid, _rgb(OFFICIAL / "image" / f"{pid}.jpg"),
                    np.asarray(Image.open(OFFICIAL / "image-parse" / f"{pid}.png")),
                    OpenPoseKeypoints.from_json_dict(d)))
    render = _rgb(V3 / "openpose_img" / "00006_00_rendered.png")
    out.append(("00006_00", _rgb(V3 / "image" / "00006_00.jpg"),
                np.asarray(Image.open(V3 / "image-parse-v3" / "00006_00.png")),
                OpenPoseKeypoints(keypoints_from_render(render))))
    return out


def garments() -> list[tuple[str, np.ndarray]]:
    paths = sorted((OFFICIAL / "cloth").glob("*.jpg")) + sorted((DATA / "samples" / "cloth").glob("*.jpg"))
    return [(p.stem, _rgb(p)) for p in paths]


def _time(fn: Callable[[], object], rounds: int) -> float:
    """Median wall time (ms) of ``fn`` over ``rounds`` calls after one warm-up call."""
    fn()
    ts = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(ts)


def reference_ms(rounds: int) -> float:
    img = np.random.default_rng(0).integers(0, 256, (1024, 768, 3), dtype=np.uint8)

    def ref() -> None:
        for _ in range(10):
            cv2.GaussianBlur(img, (0, 0), 3.0)

    return _time(ref, max(rounds, 5))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=None, help="cv2.setNumThreads (default: OpenCV's own)")
    args = ap.parse_args()
    if args.threads is not None:
        cv2.setNumThreads(args.threads)
    rounds = max(1, args.rounds)

    ref_start = reference_ms(rounds)
    ppl = persons()
    rows: dict[str, list[float]] = {}

    def add(name: str, fn: Callable[[], object]) -> None:
        rows.setdefault(name, []).append(_time(fn, rounds))

    combined = getattr(ag, "agnostic_image_and_mask", None)
    for _pid, image, parse, kp in ppl:
        pose = kp.pose
        add("agnostic_mask", lambda: ag.agnostic_mask(image.shape[:2], parse, pose))
        add("agnostic_image", lambda: ag.agnostic_image(image, parse, pose))
        add("parse_agnostic", lambda: ag.parse_agnostic(parse, pose))
        add("render_pose", lambda: render_pose(kp, (image.shape[1], image.shape[0])))
        if combined is not None:
            add("agnostic_image_and_mask", lambda: combined(image, parse, pose))
        pose64 = pose.astype(np.float64)
        add("approximate_densepose_parts", lambda: approximate_densepose_parts(parse, pose64))
    for _name, rgb in garments():
        add("cloth_mask", lambda: cloth_mask(rgb))

    # the reference is timed before and after the functions; their mean damps drifts of a shared machine
    ref = (ref_start + reference_ms(rounds)) / 2.0
    mean = {k: float(np.mean(v)) for k, v in rows.items()}
    derive = mean["agnostic_mask"] + mean["agnostic_image"] + mean["parse_agnostic"] + mean["render_pose"]
    table = [(k, mean[k], len(rows[k])) for k in ("agnostic_mask", "agnostic_image", "parse_agnostic",
                                                  "render_pose")]
    table.append(("derive total (4 calls)", derive, len(ppl)))
    if combined is not None:
        fused = mean["agnostic_image_and_mask"] + mean["parse_agnostic"] + mean["render_pose"]
        table.append(("agnostic_image_and_mask", mean["agnostic_image_and_mask"], len(ppl)))
        table.append(("derive total (fused agnostic)", fused, len(ppl)))
    table.append(("approximate_densepose_parts", mean["approximate_densepose_parts"], len(ppl)))
    table.append(("cloth_mask", mean["cloth_mask"], len(rows["cloth_mask"])))

    print(f"reference (10x GaussianBlur s=3, 768x1024x3): {ref:.2f} ms   "
          f"cv2 threads {cv2.getNumThreads()}, rounds {rounds}")
    print(f"{'function':32s} {'ms/image':>9s} {'x ref':>7s} {'images':>7s}")
    for name, ms, n in table:
        print(f"{name:32s} {ms:9.2f} {ms / ref:7.3f} {n:7d}")


if __name__ == "__main__":
    main()
