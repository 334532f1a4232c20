"""Full-size StableVITON on this CPU: build, denoiser forward latency at 512x384, one training step, peak RSS.

Prints: build time; ε-prediction latency (spatial encoder + UNet + 9 zero cross-attention blocks, batch 1, latent
64x48, no grad) after one warm-up; one training step (VAE encodes, CLIP, forward, backward, AdamW on the trained
parts only — the frozen parts run under no_grad exactly as officially); trainable-parameter counts against the
spec (529.4 M in the official optimizer set, 355.3 M actually updated); peak RSS (resource.getrusage).
Random weights (no checkpoint needed). Must fit in 24 GiB.

    .venv/bin/python bench/bench_model.py [--steps 1] [--atv] [--no-checkpointing]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from vitontrain.models import build_model  # noqa: E402


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # Linux: KiB


def make_batch(h: int = 512, w: int = 384) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    batch = {k: torch.rand(1, 3, h, w, generator=g) * 2 - 1 for k in ("image", "agn", "image_densepose", "cloth")}
    batch["agn_mask"] = (torch.rand(1, 1, h, w, generator=g) > 0.5).float()
    m = torch.zeros(1, 1, h, w)
    m[:, :, h // 4: 3 * h // 4, w // 4: 3 * w // 4] = 1
    batch["gt_cloth_warped_mask"] = m
    return batch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1, help="training steps to time (the first one is reported too)")
    ap.add_argument("--atv", action="store_true", help="stage-2 loss (ATV on warp_flow_blks.4)")
    ap.add_argument("--no-checkpointing", action="store_true", help="disable gradient checkpointing")
    args = ap.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)

    t0 = time.perf_counter()
    model = build_model(ROOT / "pipelines/train/stableviton.yaml")
    model.use_atv_loss = args.atv
    if args.no_checkpointing:
        model.set_gradient_checkpointing(False)
    print(f"build: {time.perf_counter() - t0:.1f} s, peak RSS {peak_rss_gib():.2f} GiB", flush=True)

    named = dict(model.named_parameters())
    total = sum(p.numel() for p in named.values())
    official = sum(named[n].numel() for n in model.trainable_parameter_names("official"))
    effective = sum(named[n].numel() for n in model.trainable_parameter_names("effective"))
    print(f"parameters: {total:,} total; optimizer (official set) {official:,} (official 529,355,008); "
          f"updated {effective:,} (expected 355,255,168)", flush=True)

    # ---- denoiser forward latency (inference) --------------------------------------------------------------
    model.eval()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 4, 64, 48, generator=g)
    cond = torch.randn(1, 9, 64, 48, generator=g)
    hint = torch.randn(1, 4, 64, 48, generator=g)
    ctx = torch.randn(1, 1, 768, generator=g)
    t = torch.tensor([500])
    with torch.inference_mode():
        times = []
        for _ in range(2):
            s = time.perf_counter()
            model.apply_model(x, t, cond, hint, ctx)
            times.append(time.perf_counter() - s)
    print(f"denoiser forward 512x384 (latent 64x48), batch 1: first {times[0]:.2f} s, warm {times[1]:.2f} s; "
          f"peak RSS {peak_rss_gib():.2f} GiB", flush=True)

    # ---- training step ---------------------------------------------------------------------------------------
    model.train()
    opt = torch.optim.AdamW(model.optimizer_parameters(), lr=1e-4)  # weight_decay 0.01 (PyTorch default)
    batch = make_batch()
    for step in range(args.steps):
        s = time.perf_counter()
        out = model.training_loss(batch, generator=torch.Generator().manual_seed(step), uncond=False)
        fwd = time.perf_counter() - s
        out.loss.backward()
        bwd = time.perf_counter() - s - fwd
        opt.step()
        opt.zero_grad(set_to_none=True)
        total_s = time.perf_counter() - s
        atv = "" if out.loss_atv is None else f", atv {out.loss_atv.item():.3e}"
        print(f"train step {step}: loss {out.loss.item():.4f}{atv}; forward {fwd:.1f} s, backward {bwd:.1f} s, "
              f"total {total_s:.1f} s; peak RSS {peak_rss_gib():.2f} GiB", flush=True)
    with_state = sum(p.numel() for p in opt.state if opt.state[p])
    print(f"AdamW state allocated for {with_state:,} parameters (the ones that received a gradient)", flush=True)
    print(f"peak RSS: {peak_rss_gib():.2f} GiB", flush=True)


if __name__ == "__main__":
    main()
