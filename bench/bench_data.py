"""Training data pipeline throughput: vitontrain's shard stream vs a map-style loader over VITON-HD folders that
reads the files the way the official StableVITON dataset does (spec §2.2: cv2.imread of seven full-size files per
sample, Resize to 512x384 for every map, hflip, HSV and brightness/contrast on the images, mask thresholding,
float normalisation, default collate). Both run in this process, same workers, same batch size; the ratio is the
figure to quote (absolute times depend on the machine and its load).

The bench data: the samples `vitonprep build` makes from data/samples, replicated under new keys into shards, and
the same bytes written as VITON-HD folders for the baseline. Our stream does more work per sample (shift/scale,
DensePose side swap), so the ratio is conservative.

    python bench/bench_data.py [--samples 120] [--workers 2] [--batches 20]
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vitonprep.shards import iter_tar_samples  # noqa: E402
from vitontrain.data.augment import AugmentConfig  # noqa: E402
from vitontrain.data.module import DataConfig, ShardDataModule  # noqa: E402
from vitontrain.data.transforms import normalise_batch  # noqa: E402

H, W = 512, 384


def make_data(work: Path, n_samples: int, per_shard: int) -> tuple[Path, Path]:
    built = work / "built"
    subprocess.run([sys.executable, "-m", "vitonprep", "build", str(ROOT / "data/samples"), str(built), "--workers", "2"],
                   check=True, capture_output=True)
    base = [s for tar in sorted(built.glob("*.tar")) for s in iter_tar_samples(tar)]
    shards, folders = work / "shards", work / "vitonhd" / "train"
    shards.mkdir(parents=True)
    for sub in ("image", "agnostic-v3.2", "agnostic-mask", "image-densepose", "cloth", "cloth-mask",
                "gt_cloth_warped_mask"):
        (folders / sub).mkdir(parents=True)
    pairs = []
    for i in range(n_samples):
        src = base[i % len(base)]
        key = f"{i:06d}_00"
        members = dict(src.members)
        meta = members["meta.json"].replace(b'"unpaired"', b'"paired"')
        members["meta.json"] = meta
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
        for member, sub, name, ext in (("agn_mask.png", "agnostic-mask", f"{key}_mask.png", ".png"),
                                       ("cloth_mask.png", "cloth-mask", f"{key}.jpg", ".jpg"),
                                       ("gt_cloth_warped_mask.png", "gt_cloth_warped_mask", f"{key}.jpg", ".jpg")):
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


def time_loader(make_iter, batches: int) -> float:
    it = make_iter()
    next(it)  # worker start-up and first batch are not throughput
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=120)
    ap.add_argument("--per-shard", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--batches", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        shards, folders = make_data(Path(tmp), args.samples, args.per_shard)
        baseline = DataLoader(OfficialStyleDataset(folders), batch_size=args.batch, shuffle=True,
                              num_workers=args.workers, persistent_workers=False)
        results = {}
        same_work = AugmentConfig(shiftscale=False, densepose_flip="mirror")  # what the map loader does
        for name, draft, augment in (("ours", True, AugmentConfig()),
                                     ("ours, the map loader's augmentations", True, same_work),
                                     ("ours, full-size JPEG decode", False, AugmentConfig())):
            dm = ShardDataModule(DataConfig(shards=(str(shards),), height=H, width=W, batch_size=args.batch,
                                            num_workers=args.workers, shuffle_buffer=50, jpeg_draft=draft,
                                            epoch_samples=args.samples * 10, augment=augment))
            dm.setup("fit")
            # uint8 batches become float in the main process here, as on a CPU-only trainer (on a GPU it is free)
            results[name] = time_loader(lambda dm=dm: map(normalise_batch, iter(dm.train_dataloader())), args.batches)
        results["official-style map loader"] = time_loader(lambda: iter(baseline), args.batches)
        # in cycles of 10 batches with the baseline again last, so drift in machine load shows up
        results["official-style map loader (again)"] = time_loader(lambda: iter(baseline), args.batches)
    base = (results["official-style map loader"] + results["official-style map loader (again)"]) / 2
    n = args.batches * args.batch
    print(f"data pipeline at {H}x{W}, batch {args.batch}, {args.workers} workers, {n} samples timed per loader "
          f"(ours also shifts/scales and swaps DensePose sides unless said otherwise)")
    for name, seconds in results.items():
        print(f"  {name:40s} {n / seconds:7.1f} samples/s   {base / seconds:5.2f}x the map loader")


if __name__ == "__main__":
    main()
