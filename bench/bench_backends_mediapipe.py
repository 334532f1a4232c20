"""Per-stage time of the mediapipe back-ends on the bundled persons (5 samples + 4 DressCode + 3 official, 768x1024).

Stages: pose (BlazePose full + its segmentation mask), face (FaceMesh with iris on the head crop), hands
(Hands lite - the default ``hands_model`` - and full, whole image), segmentation (SelfieSegmentation model 0),
face detection (full range), and the two entry points (``MediapipePose.__call__`` = pose + face + hands +
mapping; ``check_person`` = segmentation + face detection + checks). Absolute times depend on the machine;
compare the ratios to the pose stage. Times are CPU time of this process (mediapipe runs these graphs on one
core; CPU time is less disturbed than wall time by other processes on a shared machine).

The last lines compare the two hand models' keypoints on these images: mean distance per hand (pixels)
between lite and full, and hands found by only one of them.

Usage: ``python bench/bench_backends_mediapipe.py [rounds]`` (default 3 rounds after one warm-up round;
the per-image figure is the median over rounds, the table shows the mean over images).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vitonprep.backends.person_mediapipe import MediapipePerson  # noqa: E402
from vitonprep.backends.pose_mediapipe import MediapipePose, MediapipePoseConfig  # noqa: E402


def images() -> list[tuple[str, np.ndarray]]:
    data = ROOT / "data"
    paths = (sorted((data / "samples" / "person").glob("*.jpg"))
             + sorted((data / "dresscode-photos" / "person").glob("*.jpg"))
             + sorted((data / "vitonhd-official" / "image").glob("*.jpg")))
    out = []
    for p in paths:
        im = Image.open(p).convert("RGB")
        if im.size != (768, 1024):
            im = im.resize((768, 1024), Image.BILINEAR)
        out.append((p.stem, np.asarray(im)))
    return out


def ms(fn) -> float:
    t0 = time.process_time()
    fn()
    return (time.process_time() - t0) * 1000.0


def main(rounds: int = 3) -> None:
    imgs = images()
    t0 = time.perf_counter()
    pose = MediapipePose().setup()
    person = MediapipePerson().setup()
    setup_ms = (time.perf_counter() - t0) * 1000.0
    pose_full = MediapipePose(MediapipePoseConfig(hands_model="full")).setup()

    stages = {
        "pose (BlazePose+mask)": lambda rgb, lm: pose.landmarks(rgb),
        "face (FaceMesh crop)": lambda rgb, lm: pose.face_keypoints(rgb, lm),
        "hands (lite, default)": lambda rgb, lm: pose.hand_keypoints(rgb, lm),
        "hands (full)": lambda rgb, lm: pose_full.hand_keypoints(rgb, lm),
        "segmentation (selfie 0)": lambda rgb, lm: person.segment(rgb),
        "face detection (full)": lambda rgb, lm: person.detect_faces(rgb),
        "= MediapipePose()(rgb)": lambda rgb, lm: pose(rgb),
        "= check_person(rgb, pose)": None,
    }
    landmarks = {}
    results = {}
    for name, rgb in imgs:  # warm-up round (first calls build the graphs' buffers)
        r = pose(rgb)
        landmarks[name], results[name] = r.landmarks, r
        person.check_person(rgb, r)
    times: dict[str, list[float]] = {k: [] for k in stages}
    for name, rgb in imgs:
        lm = landmarks[name]
        for k, fn in stages.items():
            if fn is None:
                samples = [ms(lambda: person.check_person(rgb, results[name])) for _ in range(rounds)]
            else:
                samples = [ms(lambda: fn(rgb, lm)) for _ in range(rounds)]
            times[k].append(statistics.median(samples))
    agree, only = [], 0
    for name, rgb in imgs:
        for lite, full in zip(pose.hand_keypoints(rgb, landmarks[name]),
                              pose_full.hand_keypoints(rgb, landmarks[name]), strict=True):
            a, b = lite[:, 2] > 0, full[:, 2] > 0
            if a.any() and b.any():
                agree.append(float(np.linalg.norm(lite[:, :2] - full[:, :2], axis=1).mean()))
            elif a.any() or b.any():
                only += 1
    pose.close()
    pose_full.close()
    person.close()

    ref = float(np.mean(times["pose (BlazePose+mask)"]))
    print(f"{len(imgs)} images 768x1024, {rounds} rounds (median per image, mean over images); "
          f"setup of both back-ends {setup_ms:.0f} ms")
    print(f"{'stage':28s} {'ms/image':>9s} {'ratio to pose':>14s}")
    for k, v in times.items():
        m = float(np.mean(v))
        print(f"{k:28s} {m:9.1f} {m / ref:14.2f}")
    if agree:
        print(f"hands lite vs full: {len(agree)} hands found by both, mean distance per hand "
              f"{np.median(agree):.1f} px median, {max(agree):.1f} px max; {only} found by only one model")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
