"""End-to-end `vitonprep build` throughput with the default offline pipeline, and a per-stage breakdown.

Prints, in one run (machines are noisy, so compare the ratios, not the absolute figures):

* the machine's own 2-process ceilings: a CPU-bound task timed in 1 process and in 2 concurrent processes that
  are already started, once pure compute (cache-resident numpy: 2.00x = two free cores; less means shared or busy
  cores) and once image work like a build's (OpenCV on 768x1024 images, which also share caches and memory
  bandwidth: on the 2-core dev machine ~1.8x while pure compute gives ~2.0x). The ratios below are compared
  with the image ceiling;
* persons/s of ``build --workers 1`` and ``--workers 2``, each run as a fresh Python process the way a user runs
  the command (interpreter, imports, model set-up and shard writing included), on the bundled photos
  replicated to N persons at 768x1024. The two are run alternately, ``--repeats`` times each, and the fastest
  run of each counts;
* the steady rate of the same runs: the slope of samples finished against time between each worker's first
  shard and the tail, i.e. the rate once every worker is started (what a long build sees);
* the same end-to-end figure with the validation `vitonprep build` runs next (as many processes as the build);
* CPU milliseconds per person (the process and its workers, validation included) and the per-stage time of the
  1-worker run;
* peak RSS of the build for N and 2N persons (memory must stay flat as the input grows).

Shards hold N/32 persons, so the 2 workers share 32 tasks and finish within about one small shard of each other;
with the default 50 per shard a build needs thousands of persons before the same holds. The default N (256) makes
the build long next to the ~1 s each process needs to start (imports, model set-up, first calls): at 64 persons
that start-up is a sixth of a 2-worker build.

Usage: ``python bench/bench_build.py [N] [--repeats R]`` (default 256 persons, 2 repeats).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: iterations of the ceiling tasks (about 1 s each on the 2-core dev machine when idle)
CEILING_ITERS = {"numpy": 12000, "image": 60}


def make_raw(tmp: Path, n: int) -> Path:
    """n person photos (the 5 VITON-HD + 4 DressCode photos, cycled) each paired with a garment."""
    persons = sorted((ROOT / "data/samples/person").glob("*.jpg")) + sorted(
        (ROOT / "data/dresscode-photos/person").glob("*.jpg"))
    cloths = sorted((ROOT / "data/samples/cloth").glob("*.jpg"))
    raw = tmp / f"raw{n}"
    (raw / "person").mkdir(parents=True)
    (raw / "cloth").mkdir()
    lines = []
    for i in range(n):
        p, c = persons[i % len(persons)], cloths[i % len(cloths)]
        shutil.copy(p, raw / "person" / f"p{i:04d}.jpg")
        shutil.copy(c, raw / "cloth" / f"c{i:04d}.jpg")
        lines.append(f"p{i:04d}.jpg c{i:04d}.jpg")
    (raw / "pairs.txt").write_text("\n".join(lines) + "\n")
    return raw


# ---------------------------------------------------------------- the machine's ceiling

def _ceiling_task(go, kind: str, iters: int) -> float:
    """CPU-bound work, single-threaded; returns its own seconds. ``numpy``: element-wise ops on a cache-resident
    array (pure compute); ``image``: OpenCV blur + Lab conversion of a 768x1024 photo-sized image, the kind of work
    a build does (memory traffic included)."""
    import cv2
    import numpy as np

    cv2.setNumThreads(1)
    a = np.random.default_rng(0).random(32_768)
    img = (np.random.default_rng(1).random((1024, 768, 3)) * 255).astype(np.uint8)
    go.wait()
    t0 = time.perf_counter()
    for _ in range(iters):
        if kind == "numpy":
            a = np.sqrt(a * 1.0001 + 0.5)
        else:
            cv2.cvtColor(cv2.GaussianBlur(img, (9, 9), 0), cv2.COLOR_RGB2LAB)
    return time.perf_counter() - t0


def cpu_ceiling(kind: str) -> tuple[float, float, float]:
    """(seconds in 1 process, wall seconds of 2 concurrent processes doing the same each, ratio 2*t1/t2)."""
    ctx = mp.get_context("spawn")
    out = []
    for nproc in (1, 2):
        with ctx.Manager() as manager, ProcessPoolExecutor(nproc, mp_context=ctx) as pool:
            go = manager.Event()
            futs = [pool.submit(_ceiling_task, go, kind, CEILING_ITERS[kind]) for _ in range(nproc)]
            time.sleep(1.0)  # let both processes start and reach go.wait()
            t0 = time.perf_counter()
            go.set()
            [f.result() for f in futs]
            out.append(time.perf_counter() - t0)
    t1, t2 = out
    return t1, t2, 2 * t1 / t2


# ---------------------------------------------------------------- build runs

def child_build(raw: str, out: str, workers: int, per_shard: int) -> dict:
    """Runs inside a fresh process (``--child``): one build, with the time of each finished shard."""
    from vitonprep.build import BuildOptions, build_dataset
    from vitonprep.config import load_pipeline_config

    t_start = time.perf_counter()
    done: list[tuple[float, int]] = []
    cfg = load_pipeline_config("default", {"samples_per_shard": per_shard})
    rep = build_dataset(cfg, Path(raw), Path(out), BuildOptions(workers=workers),
                        progress=lambda r, i, n: done.append((time.perf_counter() - t_start, r.nsamples)))
    t_built = time.perf_counter()
    from vitonprep.validate import validate_shards

    assert validate_shards(Path(out), workers=workers).ok  # what `vitonprep build` runs next
    validate_s = time.perf_counter() - t_built
    # workers are forked by the pools' forkserver (vitonprep.runner.pool_context), which reaps them: their CPU
    # and memory reach this process's RUSAGE_CHILDREN only once the server has exited and been waited for
    from multiprocessing import forkserver

    forkserver._forkserver._stop()
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"nsamples": rep.nsamples, "stage_seconds": rep.stage_seconds, "done": done, "validate": validate_s,
            "cpu": own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime,
            "rss_mib": max(own.ru_maxrss, kids.ru_maxrss) / 1024}


def run(raw: Path, out: Path, workers: int, per_shard: int) -> dict:
    """A build in a fresh process; adds the wall time as the parent saw it and the steady rate."""
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--child", str(raw), str(out), str(workers), str(per_shard)],
                          capture_output=True, text=True, check=True)
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    r["wall_with_validate"] = time.perf_counter() - t0
    r["wall"] = r["wall_with_validate"] - r["validate"]
    r["steady"] = steady_rate(r["done"], workers)
    return r


def steady_rate(done: list[tuple[float, int]], workers: int) -> float:
    """Samples/s once every worker runs: the least-squares slope of samples finished against time, over the
    shard completions after each worker's first one and before the last ``workers - 1`` (the tail, where workers
    run out of shards and go idle)."""
    import numpy as np

    t = np.array([d[0] for d in done])
    n = np.cumsum([d[1] for d in done])
    middle = slice(workers - 1, len(done) - (workers - 1))
    if len(t[middle]) < 3:
        return float("nan")
    return float(np.polyfit(t[middle], n[middle], 1)[0])


def main(n: int, repeats: int) -> None:
    load0 = os.getloadavg()[0]
    for kind, what in (("numpy", "pure compute"), ("image", "768x1024 OpenCV image work")):
        t1c, t2c, ceiling = cpu_ceiling(kind)
        print(f"machine ceiling, {what} (already-started processes): 1 process {t1c:.2f} s, "
              f"2 processes {t2c:.2f} s for twice the work -> {ceiling:.2f}x")
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        raw = make_raw(tmp, n)
        per_shard = max(1, n // 32)
        run(make_raw(tmp, 2), tmp / "warm", 1, 2)  # page cache and .pyc files, outside the timing
        runs: dict[int, list[dict]] = {1: [], 2: []}
        for _ in range(repeats):
            for workers in (1, 2):
                runs[workers].append(run(raw, tmp / f"o{workers}", workers, per_shard))
        best = {w: min(rs, key=lambda r: r["wall"]) for w, rs in runs.items()}
        steady = {w: max(r["steady"] for r in rs) for w, rs in runs.items()}
        print(f"persons: {n} at 768x1024 in shards of {per_shard}, default offline pipeline, fresh process per "
              f"build, best of {repeats}; samples made: {best[1]['nsamples']}/{best[2]['nsamples']}")
        for w in (1, 2):
            r = best[w]
            print(f"{w} worker{'s' if w > 1 else ' '}: {r['nsamples'] / r['wall']:5.2f} persons/s end to end "
                  f"({r['wall']:.2f} s), steady {steady[w]:5.2f} persons/s, "
                  f"CPU {r['cpu'] / max(r['nsamples'], 1) * 1000:4.0f} ms/person; with validate "
                  f"({r['validate']:.2f} s): {r['nsamples'] / r['wall_with_validate']:5.2f} persons/s")
        e2e = best[1]["wall"] / best[2]["wall"]
        st = steady[2] / steady[1]
        print(f"ratio 2 workers / 1 worker: end to end {e2e:.2f}x ({e2e / ceiling:.0%} of the machine's image "
              f"ceiling {ceiling:.2f}x), steady {st:.2f}x ({st / ceiling:.0%})")
        # each repeat's pair ran back to back, so its ratio is the least disturbed by the machine's drift
        pairs_e2e = sorted(a["wall"] / b["wall"] for a, b in zip(runs[1], runs[2], strict=True))
        pairs_st = sorted(b["steady"] / a["steady"] for a, b in zip(runs[1], runs[2], strict=True))
        print(f"  per repeat (1 worker, then 2 workers): end to end {', '.join(f'{x:.2f}' for x in pairs_e2e)}x, "
              f"steady {', '.join(f'{x:.2f}' for x in pairs_st)}x")
        for w in (1, 2):
            rates = sorted(r["nsamples"] / r["wall"] for r in runs[w])
            print(f"  {w} worker{'s' if w > 1 else ' '} end to end, every repeat: "
                  f"{', '.join(f'{x:.2f}' for x in rates)} persons/s")
        r1 = best[1]
        total = sum(r1["stage_seconds"].values())
        print("per-stage share of the 1-worker build (milliseconds per person):")
        for stage, sec in sorted(r1["stage_seconds"].items(), key=lambda kv: -kv[1]):
            print(f"  {stage:12s} {sec / total:6.1%}  {sec / max(r1['nsamples'], 1) * 1000:7.1f} ms")
        big = run(make_raw(tmp, 2 * n), tmp / "o_big", 2, per_shard)
        print(f"peak RSS of the largest process: {best[2]['rss_mib']:.0f} MiB for {n} persons, "
              f"{big['rss_mib']:.0f} MiB for {2 * n} (flat if equal)")
    print(f"load average (1 min) at start / end: {load0:.1f} / {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
          "(other processes on the machine lower every figure above)")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        import logging

        logging.disable(logging.WARNING)
        print(json.dumps(child_build(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))))
    else:
        ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
        ap.add_argument("persons", nargs="?", type=int, default=256)
        ap.add_argument("--repeats", type=int, default=2)
        args = ap.parse_args()
        main(args.persons, args.repeats)
