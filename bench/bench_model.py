"""Full-size StableVITON on this CPU: build, denoiser forward latency at 512x384, one training step, peak RSS.

Prints: build time; ε-prediction latency (spatial encoder + UNet + 9 zero cross-attention blocks, batch 1, latent
64x48, no grad) after one warm-up; one training step (VAE encodes, CLIP, forward, backward, AdamW on the trained
parts only — the frozen parts run under no_grad exactly as officially); trainable-parameter counts against the
spec (529.4 M in the official optimizer set, 355.3 M actually updated); peak RSS (resource.getrusage).
Random weights (no checkpoint needed). Must fit in 24 GiB.

``--save`` (``make bench-model``): the training step goes through the real trainer instead (``vitontrain fit
--config stableviton``'s ``build_fit`` at batch 1, 512x384, on the bundled VITON-HD samples converted to shards),
then the final checkpoint save through the trainer's checkpoint I/O (``vitontrain.train.checkpointing``), then a
strict reload into a fresh model (``restore_net``: rebuilt from the stored config, the checkpoint's tensors loaded
strictly). Reports, after each phase, the process's peak RSS (``ru_maxrss``) and the phase's own peak (RSS sampled
every 20 ms), and the save's extra memory relative to the checkpoint and to the model. Target: under 20 GiB.

    .venv/bin/python bench/bench_model.py [--steps 1] [--atv] [--no-checkpointing]
    .venv/bin/python bench/bench_model.py --save [--set train.precision=32-true]

On a CPU without bf16 instructions (and no GPU) ``--save`` measures in fp32 unless a precision is given, and says so.
"""

from __future__ import annotations

import argparse
import gc
import resource
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from vitontrain.models import build_model  # noqa: E402


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # Linux: KiB


def rss_gib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 1024 ** 3


class PhasePeak:
    """The highest RSS seen since ``start()``, sampled every 20 ms by a thread (ru_maxrss is the whole process's)."""

    def __init__(self) -> None:
        self.peak = 0.0
        self._stop = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_gib())

    def start(self) -> float:
        now = rss_gib()
        self.peak = now
        return now

    def stop(self) -> None:
        self._stop.set()


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
    ap.add_argument("--save", action="store_true", help="one step through the real trainer, the checkpoint save "
                                                        "and a strict reload, with peak RSS per phase")
    ap.add_argument("--config", default="stableviton", help="--save: the training config (tiny for a quick check)")
    ap.add_argument("--set", action="append", default=[], help="--save: extra fit overrides KEY=VALUE")
    args = ap.parse_args()
    if args.save:
        bench_save(args.config, args.set)
        return
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


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (x86 AVX512-BF16 or AMX; Linux flags). Without it, torch emulates
    bf16 matmuls: the shipped bf16-mixed step ran for over 16 minutes on this project's 2-core AVX2 machine."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return True  # unknown: keep the shipped precision
    return "avx512_bf16" in flags or "amx_bf16" in flags


def bench_save(config: str, overrides: list[str]) -> None:
    """One full-size step, the checkpoint save and a strict reload through the trainer's own code."""
    if not torch.cuda.is_available() and not cpu_has_bf16() and not any(o.startswith("train.precision=")
                                                                       for o in overrides):
        # measured in fp32 here (weights and AdamW state are fp32 under bf16-mixed too; its activations and autocast
        # weight copies differ, so the bf16 peak is not this one)
        print("this CPU has no bf16 instructions: measuring with train.precision=32-true "
              "(--set train.precision=bf16-mixed forces the shipped precision)", flush=True)
        overrides = [*overrides, "train.precision=32-true"]
    from vitonprep.convert import ConvertConfig, convert_dataset
    from vitontrain.models.stableviton import count_parameters
    from vitontrain.train.config import load_fit_config
    from vitontrain.train.fit import build_fit, run_fit
    from vitontrain.train.weights import restore_net

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; --save: step + save + reload", flush=True)
    work = Path(tempfile.mkdtemp(prefix="bench_model_"))
    sampler = PhasePeak()
    try:
        shards = work / "shards"
        convert_dataset(ConvertConfig("vitonhd", ROOT / "data/vitonhd-official", shards, samples_per_shard=1))
        cfg = load_fit_config(config, [
            f"data.shards=[{shards}]", f"train.out_dir={work / 'run'}", "data.batch_size=1", "data.num_workers=0",
            "data.shuffle_buffer=0", "data.epoch_samples=2", "data.pairs=[paired,unpaired]", "data.height=512",
            "data.width=384", "train.max_steps=1", "train.checkpoint_every_n_steps=0", "train.save_last=true",
            "train.sample_every_n_steps=0", "train.log_every_n_steps=1", *overrides])
        print(f"config: {cfg.source}, precision {cfg.train.precision}, batch {cfg.data.batch_size}, "
              f"{cfg.data.height}x{cfg.data.width}", flush=True)

        t0, before = time.perf_counter(), sampler.start()
        run = build_fit(cfg, resume="none", progress=False, logger_backends=False)
        net = run.system.net
        model_gib = sum(t.numel() * t.element_size() for t in net.state_dict().values()) / 1024 ** 3
        print(f"build: {time.perf_counter() - t0:.1f} s; model {count_parameters(net) / 1e9:.3f} B parameters, "
              f"{model_gib:.2f} GiB of tensors; phase peak {sampler.peak:.2f} GiB (from {before:.2f}); "
              f"process peak {peak_rss_gib():.2f} GiB", flush=True)

        io = run.trainer.strategy.checkpoint_io
        save = io.save_checkpoint
        phases: dict[str, float] = {}
        t_step = time.perf_counter()
        sampler.start()

        def timed_save(checkpoint, path, storage_options=None):  # the trainer's own I/O, timed and measured
            phases["step_peak"], phases["step_s"] = sampler.peak, time.perf_counter() - t_step
            phases["before_save"] = sampler.start()
            t = time.perf_counter()
            save(checkpoint, path, storage_options)
            phases["save_s"], phases["save_peak"] = time.perf_counter() - t, sampler.peak

        io.save_checkpoint = timed_save
        run_fit(run)
        print(f"train step (trainer, incl. data and optimiser): {phases['step_s']:.1f} s; phase peak "
              f"{phases['step_peak']:.2f} GiB; process peak {peak_rss_gib():.2f} GiB", flush=True)
        files = sorted((work / "run/checkpoints").glob("step*.ckpt"))
        size_gib = files[-1].stat().st_size / 1024 ** 3
        extra = phases["save_peak"] - phases["before_save"]
        print(f"save {files[-1].name}: {size_gib:.2f} GiB file in {phases['save_s']:.1f} s; RSS "
              f"{phases['before_save']:.2f} GiB before, phase peak {phases['save_peak']:.2f} GiB (+{extra:.2f} GiB = "
              f"{extra / size_gib:.2f} x the checkpoint); save peak / model size "
              f"{phases['save_peak'] / model_gib:.2f}; process peak {peak_rss_gib():.2f} GiB", flush=True)

        trained = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
        probe = {n: p.detach().clone() for n, p in trained[:3]}
        del trained
        del run, net  # the trained model and AdamW state go before the fresh model is built
        gc.collect()
        t0, before = time.perf_counter(), sampler.start()
        fresh, _ = restore_net(work / "run/checkpoints/last.ckpt")
        same = all(torch.equal(dict(fresh.named_parameters())[n], v) for n, v in probe.items())
        print(f"strict reload into a fresh model: {time.perf_counter() - t0:.1f} s, trained tensors equal: {same}; "
              f"phase peak {sampler.peak:.2f} GiB (from {before:.2f}); process peak {peak_rss_gib():.2f} GiB",
              flush=True)
        verdict = "under" if peak_rss_gib() < 20 else "OVER"
        print(f"peak RSS: {peak_rss_gib():.2f} GiB ({verdict} the 20 GiB target)", flush=True)
    finally:
        sampler.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
