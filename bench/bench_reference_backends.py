"""Seconds per image of the reference-model ports at 768x1024 on this CPU, beside the originals' hand-measured times.

Ports (issue 9): DensePose R50-FPN s1x (``vitonprep/backends/densepose_rcnn.py`` + ``densepose_rcnn_model.py`` +
``densepose_rcnn_weights.py``), SCHP LIP (``parsing_schp.py``) and OpenPose body (``pose_openpose.py``). Each is
built as its parity test builds it: full-size network, seeded random weights from the test module's generator,
written in the official file layout to a temporary folder and read through the port's real loading path, float32.
Each runs on a real 768x1024 photo from ``data/samples/person/``: one warm-up, then ``--runs`` timed runs (wall
time), median. Torch intra-op threads (and OpenCV's) are set explicitly (``--threads``, default 2).

The originals' seconds per image come from ``tests/fixtures/parity/original_timings.json``: measured by hand when the
parity fixtures were made, on another occasion and under the machine load stated there, so the ratio of this run's
port time to them is indicative only. That file also holds the port's time measured on that same occasion; the
ratio of those two is the fairer comparison and is printed too.

DensePose: the calibrated random weights of the test were calibrated at test size 160; at the production size 800
they detect nobody above 0.8, so ``predict()`` would stop after the box head (``NoPersonError``). When that happens
the bench times the same steps as ``DensePoseRCNN.forward`` + ``predict`` (resize, backbone, RPN, box head, detection)
and then runs the DensePose head and the paste on one fixed person box (``FIXED_BOX``, photo fractions), so the
timed work is what one detected person costs; the detector-only part is printed separately.

SAM is not timed by default: it runs in the ``segment-anything`` package itself (there is no port, so there is no
original to compare with), and a vit_b at random initialisation takes about 40 s per 1024x1024 image here.
``--sam`` times it anyway (``cloth_mask_sam.SAMClothMask``, vit_b, on a cloth photo of ``data/samples/cloth``).

``--batch N`` (issue 20) instead compares, in the same process, each back-end's batched call
(``call_batch`` on N different 768x1024 photos of ``data/samples/person``: one forward for the batch, as a Ray
stage actor makes it) with the per-photo loop over the same photos, on the CPU. Looped and batched runs alternate
(looped first) so that machine drift hits both; the ratio batched/looped of the medians is printed per back-end.
The back-ends are built as above (DensePose's random weights detect nobody at 800, so its batched call times the
detector, which is where the batch is shared; the DensePose head runs per person anyway).

Usage: ``python bench/bench_reference_backends.py [--threads 2] [--runs 2] [--photo PATH] [--sam] [--batch N]
[--only densepose,schp,openpose,sam]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the seeded random-weight generators live in the test modules
sys.path.insert(0, str(ROOT))

import test_backend_densepose_rcnn as densepose_recipe  # noqa: E402
import test_backend_openpose as openpose_recipe  # noqa: E402
import test_backend_schp as schp_recipe  # noqa: E402

from vitonprep.backends import cloth_mask_sam as sam_mod  # noqa: E402
from vitonprep.backends import parsing_schp as schp  # noqa: E402
from vitonprep.backends import pose_openpose as op  # noqa: E402
from vitonprep.backends.densepose_outputs import result_from_outputs  # noqa: E402
from vitonprep.backends.densepose_rcnn import (  # noqa: E402
    DensePoseRCNNBackend,
    DensePoseRCNNSettings,
    resize_bgr,  # noqa: E402
)
from vitonprep.backends.densepose_rcnn_weights import write_detectron2_pkl  # noqa: E402
from vitonprep.errors import NoPersonError  # noqa: E402

TIMINGS = ROOT / "tests" / "fixtures" / "parity" / "original_timings.json"
PHOTO = ROOT / "data" / "samples" / "person" / "00034_00.jpg"
#: DensePose person box used when the random weights detect nobody: x0, y0, x1, y1 as fractions of the photo
FIXED_BOX = (0.15, 0.02, 0.85, 0.99)


def load_photo(path: Path) -> np.ndarray:
    im = Image.open(path).convert("RGB")
    if im.size != (768, 1024):
        raise SystemExit(f"{path}: {im.size[0]}x{im.size[1]}, the bench needs a 768x1024 photo")
    return np.asarray(im)


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, list[float], Any]:
    """One warm-up call, then ``runs`` timed calls; (median seconds, all seconds, last result)."""
    out = fn()
    seconds = []
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        seconds.append(time.perf_counter() - t0)
    return statistics.median(seconds), seconds, out


# ------------------------------------------------------------------------------------------------ the ports


def bench_densepose(rgb: np.ndarray, tmp: Path, runs: int) -> dict:
    path = tmp / "model_final_162be9.pkl"
    write_detectron2_pkl(densepose_recipe.random_densepose_weights(
        densepose_recipe.SEED, densepose_recipe._official_keys()), path)
    backend = DensePoseRCNNBackend(DensePoseRCNNSettings(), path)  # production settings: 800/1333, 0.8, float32
    backend.setup()
    s = backend.settings
    try:
        backend.predict(rgb)
        detects = True
    except NoPersonError:
        detects = False

    if detects:
        median, seconds, result = timed(lambda: backend.predict(rgb), runs)
        what = (f"predict() end to end, {len(result.scores)} person(s) detected above {s.score_thresh} "
                f"by the random weights")
        return {"median": median, "seconds": seconds, "what": what, "extra": []}

    m = backend.model
    h, w = rgb.shape[:2]
    detector_seconds: list[float] = []

    def fixed_box_predict():
        # DensePoseRCNN.forward and DensePoseRCNNBackend.predict step by step, the detection replaced by FIXED_BOX
        t0 = time.perf_counter()
        resized = resize_bgr(rgb[:, :, ::-1], s.min_size, s.max_size)
        x = torch.as_tensor(resized.astype(np.float32).transpose(2, 0, 1))
        with torch.no_grad():
            xx, size = m.preprocess(x.to(m.dtype))
            feats = m.features(xx)
            proposals, _ = m.proposals(feats, size)
            logits, deltas = m.box_outputs(feats, proposals)
            det = m.detect(logits, deltas, proposals, size)
            detector_seconds.append(time.perf_counter() - t0)
            ih, iw = resized.shape[:2]
            box = torch.tensor([[FIXED_BOX[0] * iw, FIXED_BOX[1] * ih, FIXED_BOX[2] * iw, FIXED_BOX[3] * ih]],
                               dtype=m.dtype)
            out = m.densepose(feats, box)
        return result_from_outputs(box, torch.ones(1, dtype=m.dtype), out, (ih, iw), (h, w)), len(det.scores)

    median, seconds, (result, n_det) = timed(fixed_box_predict, runs)
    detector = statistics.median(detector_seconds[1:])  # without the warm-up
    box_px = [round(v) for v in np.asarray(result.boxes[0])]
    what = (f"resize + backbone + RPN + box head + detection (the random weights detect {n_det} person(s) above "
            f"{s.score_thresh} at test size {s.min_size}, so predict() would stop there with NoPersonError), then the "
            f"DensePose head and paste on 1 fixed box {box_px} (photo px; {np.mean(result.parts > 0):.0%} of the "
            f"photo labelled)")
    return {"median": median, "seconds": seconds, "what": what,
            "extra": [f"of which detector only (what predict() does before raising NoPersonError): {detector:.2f} s"]}


def bench_schp(rgb: np.ndarray, tmp: Path, runs: int) -> dict:
    ds = schp.DATASETS["lip"]
    seed = int(np.load(schp_recipe.FIX / "schp_lip.npz")["seed"])  # the LIP fixture's seed, on the ResNet-101 key list
    sd = schp_recipe.random_state_dict(schp_recipe.official_keys("resnet101", ds.num_classes), seed)
    path = schp_recipe.write_pth(tmp / schp.WEIGHTS_LIP.filename, {k: v.float() for k, v in sd.items()})
    del sd
    parser = schp.SCHPParser("lip", path).setup()  # ResNet-101, input 473x473, float32, torch runtime
    median, seconds, labels = timed(lambda: parser(rgb), runs)
    what = (f"SCHPParser('lip') on the photo: ResNet-101 at input {ds.input_size[0]}x{ds.input_size[1]}, logits back "
            f"to 768x1024, argmax ({len(np.unique(labels))} labels in the output); one model, the parsing-schp "
            f"back-end runs LIP and ATR")
    return {"median": median, "seconds": seconds, "what": what, "extra": []}


def bench_openpose(rgb: np.ndarray, tmp: Path, runs: int) -> dict:
    fx = np.load(openpose_recipe.FIX / "openpose_body.npz")
    seed, shift = int(fx["seed"]), json.loads(str(fx["bias_shift"]))
    path = tmp / op.WEIGHTS_BODY.filename
    torch.save(openpose_recipe.random_state_dict(openpose_recipe.official_keys(), seed, shift), path)
    body = op.OpenPoseBody(op.OpenPoseConfig(), weights_path=path)  # boxsize 368, scale 0.5, float32
    body.setup()
    counts: dict[str, int] = {}
    detect = body.detect

    def counting_detect(bgr):  # the call below goes through this; it only records the sizes of the result
        candidate, subset = detect(bgr)
        counts.update(peaks=len(candidate), persons=len(subset))
        return candidate, subset

    body.detect = counting_detect
    median, seconds, _ = timed(lambda: body(rgb), runs)
    cfg = body.config
    what = (f"OpenPoseBody on the photo (boxsize {cfg.boxsize}, scale {cfg.scale_search}): network, peaks, limbs, "
            f"persons, main person as BODY_25; random weights (seed {seed}, bias shifts {shift}) give "
            f"{counts['peaks']} peaks and {counts['persons']} skeletons, so limb assembly dominates")
    return {"median": median, "seconds": seconds, "what": what, "extra": []}


def bench_sam(rgb_person: np.ndarray, tmp: Path, runs: int) -> dict:
    from segment_anything import sam_model_registry  # optional package: only with --sam

    cloth_path = sorted((ROOT / "data" / "samples" / "cloth").glob("*.jpg"))[0]
    cloth = load_photo(cloth_path)
    torch.manual_seed(0)
    path = tmp / sam_mod.WEIGHTS["vit_b"].filename
    torch.save(sam_model_registry["vit_b"](checkpoint=None).state_dict(), path)
    sam = sam_mod.SAMClothMask(sam_mod.SAMClothMaskConfig(model_type="vit_b"), weights_path=path).setup()
    median, seconds, mask = timed(lambda: sam(cloth), runs)
    what = (f"SAMClothMask vit_b (segment-anything itself, seeded random init) on {cloth_path.name}: OpenCV prompt, "
            f"image encoder at 1024, mask decoder, fill ({mask.mean():.0%} of the image masked)")
    return {"median": median, "seconds": seconds, "what": what, "extra": []}


PORTS = [  # (label, key in original_timings.json, bench function)
    ("DensePose R50-FPN s1x", "densepose-rcnn-r50-fpn", bench_densepose),
    ("SCHP LIP", "parsing-schp-lip", bench_schp),
    ("OpenPose body", "pose-openpose-body", bench_openpose),
]


# ------------------------------------------------------------------------------------------------ main


def _build(name: str, tmp: Path) -> Any:
    """The back-end as the timing functions above build it (full size, seeded random weights, float32, CPU)."""
    if name == "densepose":
        path = tmp / "model_final_162be9.pkl"
        write_detectron2_pkl(densepose_recipe.random_densepose_weights(
            densepose_recipe.SEED, densepose_recipe._official_keys()), path)
        backend = DensePoseRCNNBackend(DensePoseRCNNSettings(device="cpu"), path)
        backend.setup()
        return backend
    if name == "schp":
        seed = int(np.load(schp_recipe.FIX / "schp_lip.npz")["seed"])
        sd = schp_recipe.random_state_dict(schp_recipe.official_keys("resnet101", 20), seed)
        path = schp_recipe.write_pth(tmp / schp.WEIGHTS_LIP.filename, {k: v.float() for k, v in sd.items()})
        return schp.SCHPParser("lip", path, device="cpu").setup()
    if name == "openpose":
        fx = np.load(openpose_recipe.FIX / "openpose_body.npz")
        path = tmp / op.WEIGHTS_BODY.filename
        torch.save(openpose_recipe.random_state_dict(openpose_recipe.official_keys(), int(fx["seed"]),
                                                     json.loads(str(fx["bias_shift"]))), path)
        body = op.OpenPoseBody(op.OpenPoseConfig(device="cpu"), weights_path=path)
        body.setup()
        return body
    from segment_anything import sam_model_registry  # optional package: only with --sam

    torch.manual_seed(0)
    path = tmp / sam_mod.WEIGHTS["vit_b"].filename
    torch.save(sam_model_registry["vit_b"](checkpoint=None).state_dict(), path)
    return sam_mod.SAMClothMask(sam_mod.SAMClothMaskConfig(model_type="vit_b", device="cpu"),
                                weights_path=path).setup()


def _one(backend: Any, image: np.ndarray) -> Any:
    try:
        return backend(image)
    except ValueError as exc:  # what call_batch returns in place
        return exc


def bench_batches(names: list[str], n: int, runs: int) -> None:
    persons = sorted((ROOT / "data" / "samples" / "person").glob("*.jpg"))
    cloths = sorted((ROOT / "data" / "samples" / "cloth").glob("*.jpg"))
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_ref_") as tmp:
        for name in names:
            files = (cloths if name == "sam" else persons)[:n]
            if len(files) < n:
                raise SystemExit(f"--batch {n}: only {len(files)} photos in data/samples")
            images = [np.asarray(Image.open(f).convert("RGB").resize((768, 1024))) for f in files]
            t0 = time.perf_counter()
            backend = _build(name, Path(tmp))
            backend.call_batch(images[:1])  # warm-up
            looped, batched = [], []
            for _ in range(runs):
                t1 = time.perf_counter()
                singles = [_one(backend, im) for im in images]
                looped.append(time.perf_counter() - t1)
                t1 = time.perf_counter()
                outs = backend.call_batch(images)
                batched.append(time.perf_counter() - t1)
            errors = sum(isinstance(o, ValueError) for o in outs)
            assert errors == sum(isinstance(o, ValueError) for o in singles)
            lo, ba = statistics.median(looped), statistics.median(batched)
            print(f"\n{name}: {n} photos, looped {lo:.2f} s (runs {', '.join(f'{v:.2f}' for v in looped)}), "
                  f"batched {ba:.2f} s (runs {', '.join(f'{v:.2f}' for v in batched)}); batched/looped "
                  f"{ba / lo:.2f}; {errors} of {n} photos 'no person' with the random weights; "
                  f"{time.perf_counter() - t0:.0f} s in all")
            rows.append((name, lo / n, ba / n, ba / lo))
            for f in Path(tmp).iterdir():
                f.unlink()
    head = f"{'back-end':<12}{'looped s/img':>14}{'batched s/img':>15}{'batched/looped':>16}"
    print(f"\nbatch of {n}, CPU, {torch.get_num_threads()} threads\n{head}\n{'-' * len(head)}")
    for name, lo, ba, ratio in rows:
        print(f"{name:<12}{lo:>14.2f}{ba:>15.2f}{ratio:>16.2f}")
    print("\nbelow 1 = the batch is faster; on a CPU the gain is small by nature (the work is the same FLOPs); "
          "on a GPU the batch fills the device.")


def _range(v: list[float]) -> str:
    lo, hi = v
    return f"{lo:.1f}" if lo == hi else f"{lo:.1f}-{hi:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op (and OpenCV) threads (default 2)")
    ap.add_argument("--runs", type=int, default=2, help="timed runs after one warm-up (default 2)")
    ap.add_argument("--photo", type=Path, default=PHOTO, help="a 768x1024 photo (default %(default)s)")
    ap.add_argument("--sam", action="store_true", help="also time SAM vit_b (no original to compare with)")
    ap.add_argument("--batch", type=int, default=0, help="compare call_batch on N photos with the per-photo loop")
    ap.add_argument("--only", default="densepose,schp,openpose", help="back-ends for --batch (also: sam)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    if args.batch:
        print(f"torch {torch.__version__}: {torch.get_num_threads()} threads, {os.cpu_count()} CPUs; load average "
              "at start: " + ", ".join(f"{v:.2f}" for v in os.getloadavg()))
        bench_batches(args.only.split(","), args.batch, args.runs)
        print("load average at end: " + ", ".join(f"{v:.2f}" for v in os.getloadavg()))
        return
    rgb = load_photo(args.photo)
    ref = json.loads(TIMINGS.read_text())
    print(f"torch {torch.__version__}: intra-op threads {torch.get_num_threads()} (set), OpenCV threads "
          f"{cv2.getNumThreads()}, {os.cpu_count()} CPUs; float32; full-size networks with seeded random weights")
    print(f"photo {args.photo.relative_to(ROOT) if args.photo.is_relative_to(ROOT) else args.photo} "
          f"{rgb.shape[1]}x{rgb.shape[0]}; 1 warm-up + median of {args.runs} timed runs (wall time)")
    print("load average (1, 5, 15 min) at start: " + ", ".join(f"{v:.2f}" for v in os.getloadavg()))

    ports = PORTS + ([("SAM vit_b (package itself)", None, bench_sam)] if args.sam else [])
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_ref_") as tmp:
        for label, key, fn in ports:
            t0 = time.perf_counter()
            r = fn(rgb, Path(tmp), args.runs)
            print(f"\n{label}: {r['median']:.2f} s/image (runs {', '.join(f'{s:.2f}' for s in r['seconds'])}; "
                  f"build + warm-up + runs {time.perf_counter() - t0:.0f} s)")
            print(f"  timed: {r['what']}")
            for line in r["extra"]:
                print(f"  {line}")
            rows.append((label, key, r["median"]))
            for f in Path(tmp).iterdir():  # free the disk between ports
                f.unlink()
    print("\nload average (1, 5, 15 min) at end: " + ", ".join(f"{v:.2f}" for v in os.getloadavg()))

    head = (f"{'model':<28}{'port now':>10}{'original':>12}{'now/orig':>10}"
            f"{'port then':>12}{'then/orig':>11}")
    print(f"\nseconds per image, 768x1024, {torch.get_num_threads()} threads\n{head}\n{'-' * len(head)}")
    for label, key, median in rows:
        if key is None:
            print(f"{label:<28}{median:>10.2f}{'n/a':>12}{'n/a':>10}{'n/a':>12}{'n/a':>11}")
            continue
        e = ref["models"][key]
        orig = statistics.mean(e["original_seconds"])
        then = statistics.mean(e["port_seconds"])
        print(f"{label:<28}{median:>10.2f}{_range(e['original_seconds']):>12}{median / orig:>10.2f}"
              f"{_range(e['port_seconds']):>12}{then / orig:>11.2f}")
    print(f"\n'original' and 'port then': measured by hand on another occasion ({ref['date']}, {ref['threads']} "
          f"threads, {ref['dtype']}, {ref['weights']}; {ref['load']}), read from "
          f"{TIMINGS.relative_to(ROOT)}.")
    print("now/orig compares this run with that occasion and is indicative only (different load, not the same "
          "session); then/orig compares port and original measured on the same occasion. Ratios use the middle "
          "of a range; below 1 = the port is faster.")


if __name__ == "__main__":
    main()
