"""Try-on sampling speed on this CPU: seconds per image for the tiny and the full StableVITON configuration.

Random weights (no checkpoint needed; the speed does not depend on the values). One ``generate`` call = VAE encodes
(person, agnostic, DensePose, cloth hint), CLIP, the sampler's UNet calls (spatial encoder + UNet + zero
cross-attention), VAE decode. Every ``apply_model`` call is timed, so a run of a few steps is extrapolated to the
official 50 PLMS steps (51 UNet calls) as ``fixed + 51 × median call``; the printout says which figures are measured
and which are extrapolated. Full size needs ~12 GiB RAM and about a minute to build.

    .venv/bin/python bench/bench_sampling.py                      # tiny 256x192, 50 steps measured
    .venv/bin/python bench/bench_sampling.py --config stableviton --steps 4   # full 512x384, extrapolated to 50
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from vitontrain.sampling import SamplingConfig, generate, load_inference_model  # noqa: E402

OFFICIAL_STEPS = 50


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # Linux: KiB


def make_batch(b: int, h: int, w: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    batch = {k: torch.rand(b, 3, h, w, generator=g) * 2 - 1 for k in ("image", "agn", "image_densepose", "cloth")}
    keep = torch.ones(b, 1, h, w)
    keep[:, :, h // 4:3 * h // 4, w // 4:3 * w // 4] = 0
    batch["agn_mask"] = keep
    return batch


def unet_calls(sampler: str, steps: int, cfg_scale: float) -> int:
    n = steps + 1 if sampler == "plms" else steps
    return n * (2 if cfg_scale != 1.0 else 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="tiny", help="tiny | stableviton | a YAML path")
    ap.add_argument("--height", type=int, default=None, help="default: 256 (tiny) / 512 (full)")
    ap.add_argument("--width", type=int, default=None, help="default: 192 (tiny) / 384 (full)")
    ap.add_argument("--steps", type=int, default=None, help="steps actually run (default 50 tiny, 4 full)")
    ap.add_argument("--sampler", default="plms", choices=["plms", "ddim"])
    ap.add_argument("--cfg", type=float, default=1.0, help="guidance scale (1.0 = official, one branch)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()
    full = args.config != "tiny"
    h = args.height or (512 if full else 256)
    w = args.width or (384 if full else 192)
    steps = args.steps or (4 if full else OFFICIAL_STEPS)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, config {args.config}, {h}x{w}, "
          f"batch {args.batch}, {args.sampler}, CFG {args.cfg}, {args.precision}", flush=True)

    torch.manual_seed(0)
    t0 = time.perf_counter()
    model = load_inference_model(args.config, None, random_init=True)
    build_s = time.perf_counter() - t0
    print(f"build: {build_s:.1f} s, peak RSS {peak_rss_gib():.2f} GiB", flush=True)

    calls: list[float] = []
    apply = model.apply_model

    def timed_apply(*a, **k):
        t = time.perf_counter()
        out = apply(*a, **k)
        calls.append(time.perf_counter() - t)
        return out

    model.apply_model = timed_apply  # instance attribute: times every UNet call of the sampler
    batch = make_batch(args.batch, h, w)
    cfg = SamplingConfig(sampler=args.sampler, steps=steps, guidance_scale=args.cfg, precision=args.precision)
    t0 = time.perf_counter()
    out = generate(model, batch, cfg, torch.Generator().manual_seed(0))
    total = time.perf_counter() - t0
    assert len(calls) == out.nfe == unet_calls(args.sampler, steps, args.cfg), (len(calls), out.nfe)
    fixed = total - sum(calls)
    per_call = statistics.median(calls)
    n50 = unet_calls(args.sampler, OFFICIAL_STEPS, args.cfg)
    est50 = fixed + n50 * per_call
    measured_50 = steps == OFFICIAL_STEPS
    print(f"measured: {steps} {args.sampler} steps = {len(calls)} UNet calls in {total:.1f} s "
          f"(UNet call median {per_call:.2f} s, first {calls[0]:.2f} s; encodes + CLIP + decode {fixed:.1f} s)")
    label = "measured" if measured_50 else f"EXTRAPOLATED from {steps} steps"
    value = total if measured_50 else est50
    print(f"{OFFICIAL_STEPS}-step {args.sampler} ({n50} UNet calls), {label}: {value:.1f} s per batch of "
          f"{args.batch} = {value / args.batch:.1f} s/image; peak RSS {peak_rss_gib():.2f} GiB", flush=True)
    if args.json:
        args.json.write_text(json.dumps({
            "config": args.config, "size": [h, w], "batch": args.batch, "sampler": args.sampler, "cfg": args.cfg,
            "precision": args.precision, "threads": torch.get_num_threads(), "build_s": round(build_s, 2),
            "steps_run": steps, "unet_calls": len(calls), "seconds_run": round(total, 2),
            "unet_call_median_s": round(per_call, 3), "fixed_s": round(fixed, 2),
            "seconds_per_image_50_steps": round(value / args.batch, 2), "extrapolated": not measured_50,
            "peak_rss_gib": round(peak_rss_gib(), 2)}, indent=1))


if __name__ == "__main__":
    main()
