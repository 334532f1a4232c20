"""What the build's quality stage costs: CPU per person with the stage on and off, in the same process.

Both pipelines (the default one, and the same with ``quality.enabled: false``) are set up once in this process and
run on the same persons (`bench_build.make_raw`: the bundled photos cycled, each paired with a garment), in
alternating rounds so that a drifting machine slows both alike, one thread each (the build's worker policy,
`vitonprep.runner.single_threaded_compute`). Prints the CPU seconds per person of each, their ratio (the figure to
compare: machines drift, ratios less) and the quality stage's share of the stage times.

Usage: ``python bench/bench_build_quality.py [N] [--rounds R]`` (default 18 persons, 3 rounds).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from bench_build import make_raw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vitonprep.config import load_pipeline_config  # noqa: E402 - after the checkout is on the path
from vitonprep.errors import SampleError  # noqa: E402
from vitonprep.raw import plan_raw  # noqa: E402
from vitonprep.runner import single_threaded_compute  # noqa: E402
from vitonprep.stages import Pipeline  # noqa: E402


class CpuTimed:
    """A stage with the process CPU seconds of its calls summed (mediapipe's graph threads included)."""

    def __init__(self, stage):
        self.stage, self.cpu = stage, 0.0
        self.name, self.reads, self.writes = stage.name, stage.reads, stage.writes

    def setup(self) -> None:
        self.stage.setup()

    def close(self) -> None:
        self.stage.close()

    def __call__(self, ctx) -> None:
        t0 = time.process_time()
        try:
            self.stage(ctx)
        finally:
            self.cpu += time.process_time() - t0


def cpu_of(pipe: Pipeline, items, timings: dict[str, float]) -> float:
    t0 = time.process_time()
    for item in items:
        try:
            pipe.run(item, timings)
        except SampleError:
            pass
    return time.process_time() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("n", type=int, nargs="?", default=18)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, single_threaded_compute():
        items = list(plan_raw(make_raw(Path(tmp), args.n)).items)
        pipes = {"on": Pipeline.from_config(load_pipeline_config("default")),
                 "off": Pipeline.from_config(load_pipeline_config("default", {"quality.enabled": False}))}
        quality = pipes["on"].stages[-1] = CpuTimed(pipes["on"].stages[-1])
        for pipe in pipes.values():
            pipe.setup()
            pipe.run(items[0])  # first calls (graph start-up, caches) are not per-person cost
        quality.cpu = 0.0
        cpu = {k: 0.0 for k in pipes}
        timings: dict[str, dict[str, float]] = {k: {} for k in pipes}
        for r in range(args.rounds):
            for name in (("on", "off") if r % 2 == 0 else ("off", "on")):
                cpu[name] += cpu_of(pipes[name], items, timings[name])
        for pipe in pipes.values():
            pipe.close()
    n = args.n * args.rounds
    on, off = cpu["on"] / n, cpu["off"] / n
    stages_on = sum(timings["on"].values())
    print(f"{args.n} persons x {args.rounds} rounds, one thread, default pipeline")
    print(f"CPU per person: quality on {1000 * on:.1f} ms, off {1000 * off:.1f} ms -> ratio {on / off:.3f} "
          f"(+{100 * (on / off - 1):.1f} %)")
    print(f"quality stage: {1000 * quality.cpu / n:.1f} ms CPU per person ({100 * quality.cpu / cpu['off']:.1f} % "
          f"of the build without it), {1000 * timings['on'].get('quality', 0.0) / n:.1f} ms wall, "
          f"{100 * timings['on'].get('quality', 0.0) / stages_on:.1f} % of the stage time")


if __name__ == "__main__":
    main()
