"""CPU cost of the issue-18 masks against the old code path, in one process, interleaved rounds.

Two pairs of functions, each timed old then new (the order alternates per round) on the same inputs:

* **lower_body / dresses maps**: old = what the derive stage ran before (IDM-VTON's ``get_mask_location`` at
  384x512, upsampled; the photo greyed, the parse cleared under it; gt = the garment labels), new =
  ``vitonprep.derive.masks_category.category_maps``. Inputs: the four full-body photos of data/dresscode-photos
  through the default pipeline (pose and parse made once, untimed), each in its category.
* **cloth mask**: old = ``vitonprep/backends/cloth_mask_opencv.py`` as it was at ``--baseline`` (read with
  ``git show`` and loaded as a module), new = the checkout's. Inputs: every bundled garment photo (data/samples,
  data/dresscode-photos, data/vitonhd-official).

CPU time (``time.process_time``) of each function over its inputs, per round; the ratio new/old is the median
over rounds of each round's ratio. The added CPU per person is (new - old) of one category map plus one cloth
mask, set against the CPU the whole default pipeline spends per person in this process (``Pipeline.run`` of the
same four pairs, measured once after the rounds). Upper_body samples do not run the category maps.

Usage: ``python bench/bench_masks.py [--rounds N] [--baseline REV]`` (default 7 rounds, baseline aee6528).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vitonprep.backends import cloth_mask_opencv  # noqa: E402
from vitonprep.codecs import decode_labels, decode_rgb  # noqa: E402
from vitonprep.config import load_pipeline_config  # noqa: E402
from vitonprep.derive import masks_category as mc  # noqa: E402
from vitonprep.derive.body25 import OpenPoseKeypoints  # noqa: E402
from vitonprep.raw import RawItem  # noqa: E402
from vitonprep.stages.pipeline import Pipeline  # noqa: E402

DATA = ROOT / "data"
PHOTOS = DATA / "dresscode-photos"
PERSONS = {"049205_0": "lower_body", "051482_0": "lower_body", "052472_0": "dresses", "052964_0": "dresses"}
CLOTH = {"lower_body": "051412_1.jpg", "dresses": "053290_1.jpg"}


def old_category_maps(image: np.ndarray, parse: np.ndarray, kp: OpenPoseKeypoints, category: str):
    """The derive stage's lower_body / dresses path before issue 18 (stages/derive.py, `_idm_mask`)."""
    mask = mc.idm_mask(parse, kp.pose, category)
    agn = np.where(mask[..., None], np.uint8(128), image).astype(np.uint8)
    parse_agn = np.where(mask, 0, parse).astype(np.uint8)
    return agn, mask, parse_agn, np.isin(parse, mc.GARMENT_LABELS[category])


def baseline_cloth_mask(rev: str) -> Callable[[np.ndarray], np.ndarray]:
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:vitonprep/backends/cloth_mask_opencv.py"],
                         check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "cloth_mask_baseline.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("cloth_mask_baseline", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["cloth_mask_baseline"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module.cloth_mask


def made_persons(pipes: dict[str, Pipeline]) -> tuple[list[tuple], float]:
    """(image, parse, keypoints, category) per person, and the pipeline's CPU seconds per person."""
    out, cpu = [], 0.0
    for pid, category in PERSONS.items():
        cloth = PHOTOS / "cloth" / CLOTH[category]
        item = RawItem(f"{pid}__{cloth.stem}", str(PHOTOS / "person" / f"{pid}.jpg"), str(cloth), "unpaired",
                       str(PHOTOS))
        t = time.process_time()
        s = pipes[category].run(item)
        cpu += time.process_time() - t
        kp = OpenPoseKeypoints.from_json_dict(json.loads(s.members["pose.json"]))
        out.append((decode_rgb(s.members["image.jpg"]), decode_labels(s.members["parse.png"]), kp, category))
    return out, cpu / len(PERSONS)


def cpu_of(fn: Callable[..., object], inputs: list[tuple]) -> float:
    t = time.process_time()
    for args in inputs:
        fn(*args)
    return time.process_time() - t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--baseline", default="aee6528", help="git revision of the old cloth mask")
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)  # the build's workers compute on one thread each

    pipes = {c: Pipeline.from_config(load_pipeline_config("default", {"category": c})) for c in CLOTH}
    try:
        persons, _ = made_persons(pipes)  # warm-up: models loaded
        garments = [(np.asarray(Image.open(p).convert("RGB")),) for d in ("samples", "dresscode-photos",
                    "vitonhd-official") for p in sorted((DATA / d / "cloth").glob("*.jpg"))]
        pairs = {"category maps": (old_category_maps, mc.category_maps, persons),
                 "cloth mask": (baseline_cloth_mask(args.baseline), cloth_mask_opencv.cloth_mask, garments)}
        times: dict[str, list[tuple[float, float]]] = {k: [] for k in pairs}
        for r in range(args.rounds + 1):
            for name, (old, new, inputs) in pairs.items():
                if r % 2:
                    t_new, t_old = cpu_of(new, inputs), cpu_of(old, inputs)
                else:
                    t_old, t_new = cpu_of(old, inputs), cpu_of(new, inputs)
                if r:  # round 0 warms caches up
                    times[name].append((t_old / len(inputs), t_new / len(inputs)))
        _, pipeline_cpu = made_persons(pipes)
    finally:
        for p in pipes.values():
            p.close()

    print(f"{'function':<15} {'old ms':>8} {'new ms':>8} {'ratio':>6}   ({args.rounds} interleaved rounds, CPU)")
    added = 0.0
    for name, rows in times.items():
        old_ms = statistics.median(o for o, _ in rows) * 1e3
        new_ms = statistics.median(n for _, n in rows) * 1e3
        ratio = statistics.median(n / o for o, n in rows)
        added += new_ms - old_ms
        print(f"{name:<15} {old_ms:8.2f} {new_ms:8.2f} {ratio:6.3f}")
    print(f"whole default pipeline: {pipeline_cpu * 1e3:.0f} ms CPU per person (lower_body/dresses pairs, "
          f"one pass); the new masks add {added:+.2f} ms = {100 * added / (pipeline_cpu * 1e3):+.1f} % per person")
    return 0


if __name__ == "__main__":
    sys.exit(main())
