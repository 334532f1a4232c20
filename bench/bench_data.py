"""Training data pipeline throughput, two comparisons, each in this process with interleaved rounds (the machine's
load drifts; a baseline timed once at the end would carry that drift into the ratio):

1. **Loader vs the official style.** vitontrain's shard stream against a map-style loader over VITON-HD folders that
   reads the files the way StableVITON's ``dataset.py`` (``VITONHDDataset``) does: cv2.imread of seven full-size
   files per sample, resize to 512x384 for every map, hflip, HSV and brightness/contrast on the images, mask
   thresholding, float normalisation, default collate. The headline row is like-for-like: our stream with the same
   full-size decode and the same augmentations (no shift/scale, DensePose mirrored). The other rows add what our
   default does differently: JPEG draft decoding (DCT-domain downscaling) and the extra augmentations (shift/scale,
   DensePose side swap), which cost time.
2. **Persistent vs re-created workers** over 3 short epochs (issue 20): the ``ResumableLoader`` (workers kept, the
   next epoch's shuffle buffer read ahead) against the same stream in a DataLoader whose workers start again for
   every epoch (the loader before issue 20). Times include worker start-up, which is what persistence saves.

Both loaders of a comparison use the same workers and batch size; ratios are the figures to quote (absolute times
depend on the machine and its load). The bench data: the samples ``vitonprep build`` makes from data/samples,
replicated under new keys into shards, and the same bytes written as VITON-HD folders for the map loader.

    python bench/bench_data.py [--samples 120] [--workers 2] [--batches 20] [--rounds 3] [--epoch-batches 12]
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vitontrain.data.augment import AugmentConfig  # noqa: E402
from vitontrain.data.module import DataConfig, ShardDataModule, expand_shard_specs, stream_config  # noqa: E402
from vitontrain.data.shards import raw_samples  # noqa: E402
from vitontrain.data.stream import ShardStream  # noqa: E402
from vitontrain.data.transforms import normalise_batch  # noqa: E402

H, W = 512, 384


def make_data(work: Path, n_samples: int, per_shard: int) -> tuple[Path, Path]:
    built = work / "built"
    subprocess.run([sys.executable, "-m", "vitonprep", "build", str(ROOT / "data/samples"), str(built),
                    "--workers", "2"], check=True, capture_output=True)
    base = [s for tar in sorted(built.glob("*.tar")) for s in raw_samples(str(tar))]
    shards, folders = work / "shards", work / "vitonhd" / "train"
    shards.mkdir(parents=True)
    for sub in ("image", "agnostic-v3.2", "agnostic-mask", "image-densepose", "cloth", "cloth-mask",
                "gt_cloth_warped_mask"):
        (folders / sub).mkdir(parents=True)
    pairs = []
    for i in range(n_samples):
        src = base[i % len(base)]
        key = f"{i:06d}_00"
        members = {k: v for k, v in src.items() if not k.startswith("__")}
        members["meta.json"] = members["meta.json"].replace(b'"unpaired"', b'"paired"')
        tar_idx = i // per_shard
        with tarfile.open(shards / f"{tar_idx:05d}.tar", "a") as tar:
            for suffix, data in members.items():
                info = tarfile.TarInfo(f"{key}.{suffix}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        # the same content as files, the official way (masks as the official names and formats)
        (folders / "image" / f"{key}.jpg").write_bytes(members["image.jpg"])
        (folders / "agnostic-v3.2" / f"{key}.jpg").write_bytes(members["agn.jpg"])
        (folders / "image-densepose" / f"{key}.jpg").write_bytes(members["image_densepose.jpg"])
        (folders / "cloth" / f"{key}.jpg").write_bytes(members["cloth.jpg"])
        for member, sub, name in (("agn_mask.png", "agnostic-mask", f"{key}_mask.png"),
                                  ("cloth_mask.png", "cloth-mask", f"{key}.jpg"),
                                  ("gt_cloth_warped_mask.png", "gt_cloth_warped_mask", f"{key}.jpg")):
            mask = cv2.imdecode(np.frombuffer(members[member], np.uint8), cv2.IMREAD_GRAYSCALE)
            cv2.imwrite(str(folders / sub / name), mask)
        pairs.append(f"{key}.jpg {key}.jpg")
    (folders.parent / "train_pairs.txt").write_text("\n".join(pairs) + "\n")
    return shards, folders


class OfficialStyleDataset(Dataset):
    """Per item what the official VITONHDDataset executes (without albumentations, same OpenCV operations)."""

    def __init__(self, root: Path):
        self.root = root
        self.names = sorted(p.stem for p in (root / "image").glob("*.jpg"))
        self.rng = np.random.default_rng(0)

    def __len__(self) -> int:
        return len(self.names)

    def _img(self, path: Path) -> np.ndarray:
        return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)

    def _mask(self, path: Path) -> np.ndarray:
        gray = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2GRAY)  # the official reads masks as BGR first
        return ((gray >= 128) * 255).astype(np.uint8)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        n, r = self.names[i], self.root
        items = {"image": self._img(r / "image" / f"{n}.jpg"), "agn": self._img(r / "agnostic-v3.2" / f"{n}.jpg"),
                 "image_densepose": self._img(r / "image-densepose" / f"{n}.jpg"),
                 "cloth": self._img(r / "cloth" / f"{n}.jpg"),
                 "agn_mask": self._mask(r / "agnostic-mask" / f"{n}_mask.png"),
                 "cloth_mask": self._mask(r / "cloth-mask" / f"{n}.jpg"),
                 "gt_cloth_warped_mask": self._mask(r / "gt_cloth_warped_mask" / f"{n}.jpg")}
        items = {k: cv2.resize(v, (W, H), interpolation=cv2.INTER_LINEAR) for k, v in items.items()}
        if self.rng.random() < 0.5:
            items = {k: np.ascontiguousarray(v[:, ::-1]) for k, v in items.items()}
        items["agn_mask"] = 255 - items["agn_mask"]
        if self.rng.random() < 0.5:  # HSV on image, agn, cloth
            for k in ("image", "agn", "cloth"):
                hsv = cv2.cvtColor(items[k], cv2.COLOR_RGB2HSV).astype(np.int16)
                hsv += self.rng.integers(-5, 6, 3).astype(np.int16)
                items[k] = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB)
        if self.rng.random() < 0.5:  # brightness/contrast
            alpha, beta = 1 + self.rng.uniform(-0.3, 0.3), self.rng.uniform(-0.1, 0.02) * 255
            for k in ("image", "agn", "cloth"):
                items[k] = cv2.convertScaleAbs(items[k], alpha=alpha, beta=beta)
        m = items["agn_mask"][..., None] / 255.0
        items["agn"] = (items["agn"] * m + 128 * (1 - m)).astype(np.uint8)
        out = {}
        for k, v in items.items():
            if v.ndim == 3:
                out[k] = torch.from_numpy(v.astype(np.float32) / 127.5 - 1.0).permute(2, 0, 1)
            else:
                out[k] = torch.from_numpy(v.astype(np.float32) / 255.0)[None]
        return out


def time_loader(make_iter: Callable[[], Iterator[Any]], batches: int) -> float:
    it = make_iter()
    next(it)  # worker start-up and first batch are not throughput
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    return time.perf_counter() - start


def time_epochs(loader_epochs: Callable[[], Iterator[Iterator[Any]]]) -> float:
    """Wall time of whole epochs, worker start-up included."""
    start = time.perf_counter()
    for epoch in loader_epochs():
        for batch in epoch:
            normalise_batch(batch)
    return time.perf_counter() - start


def interleaved(timers: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Each timer once per round, the order rotated every round."""
    names = list(timers)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            times[name].append(timers[name]())
    return times


def loader_comparison(shards: Path, folders: Path, args: argparse.Namespace) -> None:
    baseline = DataLoader(OfficialStyleDataset(folders), batch_size=args.batch, shuffle=True,
                          num_workers=args.workers, persistent_workers=False)
    same_work = AugmentConfig(shiftscale=False, densepose_flip="mirror")  # what the map loader does
    variants = {"ours like-for-like (full-size decode, same augmentations)": (False, same_work),
                "ours, JPEG draft decode, same augmentations": (True, same_work),
                "ours default (draft decode, shift/scale, DensePose swap)": (True, AugmentConfig()),
                "ours, full-size decode, default augmentations": (False, AugmentConfig())}
    timers: dict[str, Callable[[], float]] = {"official-style map loader": lambda: time_loader(
        lambda: iter(baseline), args.batches)}
    for name, (draft, augment) in variants.items():
        dm = ShardDataModule(DataConfig(shards=(str(shards),), height=H, width=W, batch_size=args.batch,
                                        num_workers=args.workers, shuffle_buffer=50, jpeg_draft=draft,
                                        epoch_samples=args.samples * 10, augment=augment))
        dm.setup("fit")
        # uint8 batches become float in the main process here, as on a CPU-only trainer (on a GPU it is free)
        timers[name] = lambda dm=dm: time_loader(lambda: map(normalise_batch, iter(dm.train_dataloader())),
                                                 args.batches)
    times = interleaved(timers, args.rounds)
    base = times["official-style map loader"]
    n = args.batches * args.batch
    print(f"1. loaders at {H}x{W}, batch {args.batch}, {args.workers} workers, {n} samples timed per loader, "
          f"{args.rounds} interleaved rounds (median; per-round ratios to the map loader of the same round)")
    for name, secs in times.items():
        ratios = [b / s for b, s in zip(base, secs, strict=True)]
        print(f"  {name:58s} {n / statistics.median(secs):6.1f} samples/s  "
              f"{statistics.median(base) / statistics.median(secs):5.2f}x  "
              f"(rounds {', '.join(f'{r:.2f}' for r in ratios)})")


def worker_comparison(shards: Path, args: argparse.Namespace) -> None:
    epochs = 3
    cfg = DataConfig(shards=(str(shards),), height=H, width=W, batch_size=args.batch, num_workers=args.workers,
                     shuffle_buffer=args.buffer, epoch_samples=args.epoch_batches * args.batch)
    dm = ShardDataModule(cfg)
    dm.setup("fit")
    urls = expand_shard_specs(cfg.shards)

    def persistent() -> Iterator[Iterator[Any]]:
        loader = dm.train_dataloader()  # ResumableLoader: persistent workers, read-ahead
        try:
            for _ in range(epochs):
                yield iter(loader)
        finally:
            loader._iterator._shutdown_workers()  # this bench's loader only; fit's loader is shut down by Lightning

    def recreated() -> Iterator[Iterator[Any]]:
        stream = ShardStream(urls, stream_config(cfg), dm.batches_per_rank)
        loader = DataLoader(stream, batch_size=None, num_workers=args.workers, persistent_workers=False)
        for epoch in range(epochs):
            stream.set_position(epoch)
            yield iter(loader)

    times = interleaved({"persistent workers": lambda: time_epochs(persistent),
                         "re-created workers": lambda: time_epochs(recreated)}, args.rounds)
    p, r = times["persistent workers"], times["re-created workers"]
    n = epochs * dm.batches_per_rank * args.batch
    print(f"2. {epochs} epochs of {dm.batches_per_rank} batches of {args.batch} at {H}x{W}, {args.workers} workers, "
          f"shuffle buffer {args.buffer}, {args.rounds} interleaved rounds (worker start-up included)")
    for name, secs in times.items():
        print(f"  {name:22s} median {statistics.median(secs):6.2f} s  {n / statistics.median(secs):6.1f} samples/s")
    print(f"  persistent / re-created speed: {statistics.median(r) / statistics.median(p):.2f}x  "
          f"(rounds {', '.join(f'{b / a:.2f}' for a, b in zip(p, r, strict=True))})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=120)
    ap.add_argument("--per-shard", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--batches", type=int, default=20, help="batches timed per loader and round (comparison 1)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epoch-batches", type=int, default=12, help="batches per epoch (comparison 2)")
    ap.add_argument("--buffer", type=int, default=200, help="shuffle buffer (comparison 2; stableviton.yaml: 1000)")
    ap.add_argument("--only", choices=("loaders", "workers"), default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        shards, folders = make_data(Path(tmp), args.samples, args.per_shard)
        if args.only != "workers":
            loader_comparison(shards, folders, args)
        if args.only != "loaders":
            worker_comparison(shards, args)


if __name__ == "__main__":
    main()
