"""Per-sample time of a Ray stage actor's call with a batch of 8 against a batch of 1, on the CPU, in one process.

A stage actor (`vitonprep.distribute.ray_build.StageActor`) runs its stage's batched call (`Stage.run_batch`: one
back-end call per batch where the back-end batches) on whatever batch a shard worker sends. This bench builds the
actor's stage in this process (no Ray: the actor's own code, without the thread set-up it does inside Ray), makes
the contexts of 8 samples of the bundled photos (``data/samples``, cycled) up to the stage, and times

* batch 1: eight calls of one sample each, and
* batch 8: one call of eight samples,

each call in this process (the actor's own ``run``, no serialisation), or with ``--ray`` on real stage actors of a
local Ray instance (each call ships its contexts and results through Ray's object store, as a shard worker's does).
The two alternate (batch 1 first), ``--runs`` times; the medians give seconds per sample and the ratio batch 8 /
batch 1 (below 1: the batch is faster per sample). Before timing, the batch-8 results are checked to equal the
batch-1 results (the same maps and producers).

The default pipeline's back-ends (mediapipe, the heuristic parser, OpenCV) have no batched forward, so their batched
call is the per-sample loop: the ratio shows what a batch costs or saves around the model (one call and one larger
message instead of eight). The machine's load moves single runs by tens of percent: compare ratios of the same run,
and rerun when the load average is high. The reference back-ends' batched forwards are compared with their
per-photo loop by ``bench/bench_reference_backends.py --batch N``.

Usage: ``python bench/bench_stage_batch.py [--stages pose,parsing,densepose,cloth_mask] [--runs 3] [--batch 8]
[--threads 1] [--ray]``
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vitonprep.config import load_pipeline_config  # noqa: E402
from vitonprep.distribute.ray_build import StageActor  # noqa: E402
from vitonprep.errors import SampleError  # noqa: E402
from vitonprep.raw import plan_raw  # noqa: E402
from vitonprep.stages import Pipeline, SampleContext  # noqa: E402


def contexts_up_to(pipe: Pipeline, stage_name: str, n: int) -> list[SampleContext]:
    """``n`` contexts (the bundled pairs, cycled) filled by every stage before ``stage_name``."""
    items = plan_raw(ROOT / "data" / "samples").items
    before = pipe.stages[: [s.name for s in pipe.stages].index(stage_name)]
    made = []
    for item in items:
        ctx = SampleContext(item)
        for stage in before:
            stage(ctx)
        made.append(ctx)
    return [copy.deepcopy(made[i % len(made)]) for i in range(n)]


class InProcess:
    """The actor's call in this process (its own `StageActor.run`, no serialisation)."""

    def __init__(self, pipe: Pipeline, stage_name: str):
        self.actor = StageActor.__new__(StageActor)  # its __init__ builds the stage and sets threads inside Ray
        self.actor.stage = next(s for s in pipe.stages if s.name == stage_name)

    def __call__(self, ctxs: list[SampleContext]) -> list:
        return self.actor.run(ctxs)[0]


class OnRay:
    """A real Ray stage actor (1 CPU) of a local Ray instance: each call ships the contexts and the results through
    Ray's object store, as a shard worker's call does."""

    def __init__(self, cfg, stage_name: str):
        import ray  # optional dependency: only for --ray

        self.ray = ray
        self.actor = ray.remote(StageActor).options(num_cpus=1).remote(cfg, stage_name)
        ray.get(self.actor.ready.remote())

    def __call__(self, ctxs: list[SampleContext]) -> list:
        return self.ray.get(self.actor.run.remote(ctxs))[0]


def same(a, b) -> bool:
    if isinstance(a, SampleError) or isinstance(b, SampleError):
        return isinstance(a, SampleError) and isinstance(b, SampleError) and a.reason == b.reason
    for name in (*a.__dataclass_fields__,):
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(x, np.ndarray):
            if not np.array_equal(x, y):
                return False
        elif name in ("pose", "cloth_pose") and x is not None:
            if not np.array_equal(x.keypoints.pose, y.keypoints.pose):
                return False
        elif name not in ("person_check",) and x != y:
            return False
    return True


def bench_stage(pipe: Pipeline, name: str, call, batch: int, runs: int) -> tuple[float, float, float]:
    ctxs = contexts_up_to(pipe, name, batch)
    singles = [call([copy.deepcopy(c)])[0] for c in ctxs]  # warm-up, and the reference
    batched = call(copy.deepcopy(ctxs))
    equal = all(same(a, b) for a, b in zip(batched, singles, strict=True))
    assert len(batched) == batch and equal, f"{name}: batch results differ from single results"
    one, many = [], []
    for _ in range(runs):
        fresh = [copy.deepcopy(c) for c in ctxs]
        t0 = time.perf_counter()
        for c in fresh:
            call([c])
        one.append((time.perf_counter() - t0) / batch)
        fresh = copy.deepcopy(ctxs)
        t0 = time.perf_counter()
        call(fresh)
        many.append((time.perf_counter() - t0) / batch)
    b1, bn = statistics.median(one), statistics.median(many)
    return b1, bn, bn / b1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stages", default="pose,parsing,densepose,cloth_mask", help="stages of the default pipeline")
    ap.add_argument("--runs", type=int, default=3, help="alternating timed runs of each batch size (default 3)")
    ap.add_argument("--batch", type=int, default=8, help="the batch compared with batch 1 (default 8)")
    ap.add_argument("--threads", type=int, default=1, help="BLAS/OpenCV threads, as a 1-CPU actor (default 1)")
    ap.add_argument("--ray", action="store_true", help="real Ray stage actors (a local instance) instead")
    args = ap.parse_args()
    cv2.setNumThreads(args.threads)
    cfg = load_pipeline_config("default")
    pipe = Pipeline.from_config(cfg)
    pipe.setup()
    if args.ray:
        import ray  # optional dependency: only for --ray

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    rows = []
    with threadpool_limits(args.threads, user_api="blas"):
        for name in args.stages.split(","):
            call = OnRay(cfg, name) if args.ray else InProcess(pipe, name)
            b1, bn, ratio = bench_stage(pipe, name, call, args.batch, args.runs)
            rows.append((name, b1, bn, ratio))
            print(f"{name}: batch 1 {b1 * 1000:.1f} ms/sample, batch {args.batch} {bn * 1000:.1f} ms/sample, "
                  f"ratio {ratio:.2f}", flush=True)
    pipe.close()
    head = f"{'stage':<12}{'batch 1 ms/sample':>19}{f'batch {args.batch} ms/sample':>20}{'ratio':>8}"
    where = "Ray stage actors (1 CPU each, local instance)" if args.ray else "the actor's call in this process"
    print(f"\nCPU, {args.threads} thread(s), {args.runs} runs (median), {where}\n{head}\n{'-' * len(head)}")
    for name, b1, bn, ratio in rows:
        print(f"{name:<12}{b1 * 1000:>19.1f}{bn * 1000:>20.1f}{ratio:>8.2f}")
    print(f"\nratio = per-sample time at batch {args.batch} / at batch 1, measured alternately in this process; "
          "below 1: the batch is faster per sample")


if __name__ == "__main__":
    main()
