"""Tiny-configuration training steps on this machine, each step's wall time split into data wait (the loader) and
compute (forward, backward, optimiser), from Lightning hooks (vitontrain.train.callbacks.StepTiming).

Uses the shards `make demo` writes (out/shards) or builds them from data/samples.

    python bench/bench_train_step.py [--steps 20] [--height 256 --width 192] [--workers 1] [--shards DIR]
        [--set train.channels_last=false]

``--compare N``: instead, time the model step alone (forward + backward, no loader, no optimiser) in this process,
N interleaved rounds of: the step before issue 20 (four separate VAE encodes, tests/helpers/legacy_step.py), the
tuned step (one batched VAE pass, as on GPUs), the same with channels-last weights, and what `fit` runs on CPU
(channels-last, four VAE passes); prints medians and ratios to the first.
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
    ap.add_argument("--shards", type=Path, default=ROOT / "out/shards", help="a folder of shards to train on")
    ap.add_argument("--set", action="append", default=[], help="extra config override KEY=VALUE (repeatable)")
    ap.add_argument("--compare", type=int, default=0, metavar="N", help="interleaved rounds of the in-process "
                    "comparison of the old and the tuned model step (see above)")
    args = ap.parse_args()
    if args.compare:
        return compare(args.compare, args.height, args.width, args.batch)
    with tempfile.TemporaryDirectory() as tmp:
        shards = args.shards
        if not (shards / "manifest.json").is_file():
            shards = Path(tmp) / "shards"
            subprocess.run([sys.executable, "-m", "vitonprep", "build", str(ROOT / "data/samples"), str(shards)],
                           check=True, capture_output=True)
        cfg = load_fit_config("tiny", [f"data.shards=[{shards}]", f"train.out_dir={tmp}/run",
                                       f"data.height={args.height}", f"data.width={args.width}",
                                       f"data.batch_size={args.batch}", f"data.num_workers={args.workers}",
                                       f"train.max_steps={args.steps}", "train.sample_every_n_steps=0",
                                       f"train.checkpoint_every_n_steps={args.steps + 1}", *args.set])
        run = build_fit(cfg, resume="none", progress=False, logger_backends=False)
        run_fit(run)
    wait, compute = run.timing.data_wait[1:], run.timing.compute[1:]  # the first step includes worker start-up
    w, c = statistics.median(wait), statistics.median(compute)
    print(f"tiny config, {args.height}x{args.width}, batch {args.batch}, {args.workers} loader workers, "
          f"{len(compute)} steps after the first")
    print(f"  median per step: data wait {w * 1000:.0f} ms, compute {c * 1000:.0f} ms "
          f"-> the loader stalls the step {100 * w / (w + c):.1f}% of the time")


def compare(rounds: int, height: int, width: int, batch_size: int) -> None:
    import copy
    import time

    import torch

    sys.path.insert(0, str(ROOT / "tests"))
    from helpers.legacy_step import legacy_training_loss

    from vitontrain.models import build_model
    from vitontrain.train.fit import stand_in_pretrained

    torch.manual_seed(0)
    model = build_model(ROOT / "pipelines/train/tiny.yaml").train()
    stand_in_pretrained(model, 0)
    model.batch_first_stage = True  # the GPU path, whatever the CPU default
    nhwc = copy.deepcopy(model)
    nhwc.use_channels_last()
    cpu_default = copy.deepcopy(nhwc)
    cpu_default.batch_first_stage = None  # four VAE passes on CPU
    g = torch.Generator().manual_seed(1)
    batch = {k: torch.rand(batch_size, 3, height, width, generator=g) * 2 - 1
             for k in ("image", "agn", "image_densepose", "cloth")}
    batch["agn_mask"] = (torch.rand(batch_size, 1, height, width, generator=g) > 0.5).float()
    variants = {
        "before (4 encodes)": lambda seed: legacy_training_loss(model, batch, torch.Generator().manual_seed(seed))[0],
        "tuned": lambda seed: model.training_loss(batch, generator=torch.Generator().manual_seed(seed)).loss,
        "tuned + channels_last": lambda seed: nhwc.training_loss(batch,
                                                                  generator=torch.Generator().manual_seed(seed)).loss,
        "CPU default (NHWC, 4 passes)": lambda seed: cpu_default.training_loss(
            batch, generator=torch.Generator().manual_seed(seed)).loss,
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(rounds + 1):  # round 0 warms up
        for name, step in variants.items():
            for m in (model, nhwc, cpu_default):
                m.zero_grad(set_to_none=True)
            start = time.perf_counter()
            step(r).backward()
            if r:
                times[name].append(time.perf_counter() - start)
    base = statistics.median(times["before (4 encodes)"])
    print(f"tiny model step (forward + backward), {height}x{width}, batch {batch_size}, {torch.get_num_threads()} "
          f"threads, median of {rounds} interleaved rounds:")
    for name, ts in times.items():
        m = statistics.median(ts)
        print(f"  {name:30s} {m * 1000:7.0f} ms  x{m / base:.2f}")


if __name__ == "__main__":
    main()
