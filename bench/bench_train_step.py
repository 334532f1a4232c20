"""Tiny-configuration training steps on this machine, each step's wall time split into data wait (the loader) and
compute (forward, backward, optimiser), from Lightning hooks (vitontrain.train.callbacks.StepTiming).

Uses the shards `make demo` writes (out/shards) or builds them from data/samples.

    python bench/bench_train_step.py [--steps 20] [--height 256 --width 192] [--workers 1]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vitontrain.train.config import load_fit_config  # noqa: E402
from vitontrain.train.fit import build_fit, run_fit  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--height", type=int, default=256)
    ap.add_argument("--width", type=int, default=192)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        shards = ROOT / "out/shards"
        if not (shards / "manifest.json").is_file():
            shards = Path(tmp) / "shards"
            subprocess.run([sys.executable, "-m", "vitonprep", "build", str(ROOT / "data/samples"), str(shards)],
                           check=True, capture_output=True)
        cfg = load_fit_config("tiny", [f"data.shards=[{shards}]", f"train.out_dir={tmp}/run",
                                       f"data.height={args.height}", f"data.width={args.width}",
                                       f"data.batch_size={args.batch}", f"data.num_workers={args.workers}",
                                       f"train.max_steps={args.steps}", "train.sample_every_n_steps=0",
                                       f"train.checkpoint_every_n_steps={args.steps + 1}"])
        run = build_fit(cfg, resume="none", progress=False, logger_backends=False)
        run_fit(run)
    wait, compute = run.timing.data_wait[1:], run.timing.compute[1:]  # the first step includes worker start-up
    w, c = statistics.median(wait), statistics.median(compute)
    print(f"tiny config, {args.height}x{args.width}, batch {args.batch}, {args.workers} loader workers, "
          f"{len(compute)} steps after the first")
    print(f"  median per step: data wait {w * 1000:.0f} ms, compute {c * 1000:.0f} ms "
          f"-> the loader stalls the step {100 * w / (w + c):.1f}% of the time")


if __name__ == "__main__":
    main()
