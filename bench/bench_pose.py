"""CPU per person of the pose back-end: the current code against the code before the learned mapping.

    .venv/bin/python bench/bench_pose.py [--rounds 5] [--old aee6528]

Both back-ends run in this one process on the bundled person photos (data/samples/person, data/vitonhd-official,
data/dresscode-photos), in interleaved rounds (old, new, old, new, ...; the order flips every round) so that the
machine's drift hits both alike. The old code path is ``vitonprep/backends/pose_mediapipe.py`` at commit ``--old``,
read from this checkout's git. CPU time is ``time.process_time`` around each call (mediapipe computes on its
graph threads, which process time includes). Prints the CPU per person of each and the ratio new / old per round
and over all rounds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from pose_fit import OLD_COMMIT, load_old_module  # noqa: E402

from vitonprep.backends import pose_mediapipe as pm  # noqa: E402
from vitonprep.backends._mediapipe import one_thread_graphs  # noqa: E402
from vitonprep.photos import fit_to_canvas  # noqa: E402


def photos() -> list[np.ndarray]:
    paths = sorted((ROOT / "data" / "samples" / "person").glob("*.jpg"))
    paths += sorted((ROOT / "data" / "vitonhd-official" / "image").glob("*.jpg"))
    paths += sorted((ROOT / "data" / "dresscode-photos" / "person").glob("*.jpg"))
    return [fit_to_canvas(np.asarray(Image.open(p).convert("RGB")), (768, 1024), "pad")[0] for p in paths]


def cpu_of(backend, images: list[np.ndarray]) -> float:
    t0 = time.process_time()
    for rgb in images:
        backend(rgb)
    return (time.process_time() - t0) / len(images)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--old", default=OLD_COMMIT)
    args = ap.parse_args()
    old_mod = load_old_module(args.old)
    if old_mod is None:
        return 0
    images = photos()
    with one_thread_graphs():  # as in a build worker: parallelism comes from -j, not from the graphs
        new, old = pm.MediapipePose().setup(), old_mod.MediapipePose().setup()
    for b in (new, old):  # first calls load models lazily: not measured
        b(images[0])
    ratios, tn, to = [], [], []
    for r in range(args.rounds):
        order = ((old, to), (new, tn)) if r % 2 == 0 else ((new, tn), (old, to))
        for b, acc in order:
            acc.append(cpu_of(b, images))
        ratios.append(tn[-1] / to[-1])
        print(f"round {r + 1}: old {to[-1] * 1000:.1f} ms, new {tn[-1] * 1000:.1f} ms CPU per person, "
              f"new/old {ratios[-1]:.3f}")
    print(f"{len(images)} persons x {args.rounds} rounds: old {np.mean(to) * 1000:.1f} ms, new "
          f"{np.mean(tn) * 1000:.1f} ms; new/old {np.sum(tn) / np.sum(to):.3f} (per round {min(ratios):.3f}-"
          f"{max(ratios):.3f})")
    new.close()
    old.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
