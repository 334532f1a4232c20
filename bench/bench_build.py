"""End-to-end `vitonprep build` throughput with the default offline pipeline, and a per-stage breakdown.

Prints, in one run (machines are noisy, so compare the ratios, not the absolute figures):

* the machine's own 2-process ceiling: a pure-numpy CPU-bound task timed in 1 process and in 2 concurrent
  processes that are already started (2.00x = two free cores; less means shared or busy cores);
* persons/s with 1 and 2 worker processes on the bundled photos replicated to N persons at 768x1024, the 2-vs-1
  ratio and its share of the ceiling;
* the start-up of one worker process (spawn, imports, model set-up), which every 2-worker run pays once per
  worker; the 1-worker run builds in the already warm driver process. The 2-worker figure without it is an
  estimate of the steady state of a long build;
* CPU seconds per person of both runs (the 2-worker figure includes the workers' start-up) and the per-stage
  time of the 1-worker run;
* peak RSS of the driver and workers for two input sizes (memory must stay flat as the input grows).

Usage: ``python bench/bench_build.py [N]`` (default 48 persons).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vitonprep.build import BuildOptions, build_dataset  # noqa: E402
from vitonprep.config import load_pipeline_config  # noqa: E402

#: iterations of the ceiling task (about 1 s on the 2-core dev machine when idle)
CEILING_ITERS = 4000


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

def _numpy_task(go, iters: int) -> float:
    """CPU-bound, cache-resident numpy work (element-wise ops are single-threaded); returns its own seconds."""
    import numpy as np

    a = np.random.default_rng(0).random(32_768)
    go.wait()
    t0 = time.perf_counter()
    for _ in range(iters):
        a = np.sqrt(a * 1.0001 + 0.5)
    return time.perf_counter() - t0


def cpu_ceiling(iters: int = CEILING_ITERS) -> tuple[float, float, float]:
    """(seconds in 1 process, wall seconds of 2 concurrent processes doing the same each, ratio 2*t1/t2)."""
    ctx = mp.get_context("spawn")
    out = []
    for nproc in (1, 2):
        with ctx.Manager() as manager, ProcessPoolExecutor(nproc, mp_context=ctx) as pool:
            go = manager.Event()
            futs = [pool.submit(_numpy_task, go, iters) for _ in range(nproc)]
            time.sleep(1.0)  # let both processes start and reach go.wait()
            t0 = time.perf_counter()
            go.set()
            [f.result() for f in futs]
            out.append(time.perf_counter() - t0)
    t1, t2 = out
    return t1, t2, 2 * t1 / t2


# ---------------------------------------------------------------- build runs

def _setup_pipeline(cfg) -> None:
    from vitonprep.stages import Pipeline

    Pipeline.from_config(cfg).setup()


def worker_startup(cfg) -> float:
    """Wall seconds for a fresh spawned process to import vitonprep and set up the pipeline's models."""
    ctx = mp.get_context("spawn")
    t0 = time.perf_counter()
    with ProcessPoolExecutor(1, mp_context=ctx) as pool:
        pool.submit(_setup_pipeline, cfg).result()
    return time.perf_counter() - t0


def _cpu(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def run(raw: Path, out: Path, workers: int, per_shard: int):
    """(report, wall seconds, CPU seconds of this process and of the worker processes that ended)."""
    cfg = load_pipeline_config("default", {"samples_per_shard": per_shard})
    c0 = _cpu(resource.RUSAGE_SELF) + _cpu(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    rep = build_dataset(cfg, raw, out, BuildOptions(workers=workers))
    wall = time.perf_counter() - t0
    return rep, wall, _cpu(resource.RUSAGE_SELF) + _cpu(resource.RUSAGE_CHILDREN) - c0


def main(n: int = 48) -> None:
    load0 = os.getloadavg()[0]
    t1c, t2c, ceiling = cpu_ceiling()
    print(f"machine ceiling (pure numpy, already-started processes): 1 process {t1c:.2f} s, "
          f"2 processes {t2c:.2f} s for twice the work -> {ceiling:.2f}x")
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        raw = make_raw(tmp, n)
        per_shard = max(1, n // 8)
        cfg = load_pipeline_config("default", {"samples_per_shard": per_shard})
        run(make_raw(tmp, 2), tmp / "warm", 1, 2)  # import and model load outside the timing
        startup = worker_startup(cfg)
        rep1, t1, cpu1 = run(raw, tmp / "o1", 1, per_shard)
        rep2, t2, cpu2 = run(raw, tmp / "o2", 2, per_shard)
        n1, n2 = rep1.nsamples, rep2.nsamples
        print(f"persons: {n} at 768x1024 in shards of {per_shard}, default offline pipeline; "
              f"samples made: {n1}/{n2}")
        print(f"1 worker : {n1 / t1:5.2f} persons/s   CPU {cpu1 / max(n1, 1) * 1000:5.0f} ms/person")
        print(f"2 workers: {n2 / t2:5.2f} persons/s   CPU {cpu2 / max(n2, 1) * 1000:5.0f} ms/person "
              f"(incl. start-up)   ratio 2w/1w = {t1 / t2:.2f}x = {t1 / t2 / ceiling:.0%} of the machine's "
              f"{ceiling:.2f}x")
        steady = t2 - startup
        if steady > 0:
            print(f"worker start-up (spawn + import + models): {startup:.2f} s; 2 workers without it "
                  f"(estimate): {n2 / steady:5.2f} persons/s, ratio {t1 / steady:.2f}x")
        total = sum(rep1.stage_seconds.values())
        print("per-stage share of the 1-worker time (seconds per person):")
        for stage, sec in sorted(rep1.stage_seconds.items(), key=lambda kv: -kv[1]):
            print(f"  {stage:12s} {sec / total:6.1%}  {sec / max(n1, 1) * 1000:7.1f} ms")
        rss_small = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        raw_big = make_raw(tmp, 2 * n)
        run(raw_big, tmp / "o3", 2, per_shard)
        rss_big = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(f"peak RSS of worker processes: {rss_small / 1024:.0f} MiB after {n} persons, "
              f"{rss_big / 1024:.0f} MiB after {2 * n} more (flat if equal); driver {self_rss / 1024:.0f} MiB")
    print(f"load average (1 min) at start / end: {load0:.1f} / {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
          "(other processes on the machine lower every figure above)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 48)
