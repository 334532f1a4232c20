"""Convert and validate throughput (samples/s) on the bundled VITON-HD samples.

Absolute times on shared machines are noisy; the figures that travel are the ratios printed at the end, all
measured in this one process: 2 workers vs 1, validate vs convert, and convert vs a plain copy of the same
source bytes (the I/O floor).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vitonprep.convert import ConvertConfig, convert_dataset  # noqa: E402
from vitonprep.validate import validate_shards  # noqa: E402


def make_source(tmp: Path, copies: int) -> Path:
    """Replicate data/vitonhd-official ``copies`` times under new ids, so the run is long enough to time."""
    src = ROOT / "data" / "vitonhd-official"
    root = tmp / "src"
    for sub in src.iterdir():
        if sub.is_dir():
            (root / sub.name).mkdir(parents=True, exist_ok=True)
    lines = []
    for c in range(copies):
        for line in (src / "test_pairs.txt").read_text().split("\n"):
            if not line.strip():
                continue
            pid, cid = (p[:-4] for p in line.split())
            new_p, new_c = f"{c:03d}{pid[3:]}", f"{c:03d}{cid[3:]}"
            for folder, pattern, ident, new in [("image", "{}.jpg", pid, new_p), ("image-parse", "{}.png", pid, new_p),
                                                ("openpose-json", "{}_keypoints.json", pid, new_p),
                                                ("openpose-img", "{}_rendered.png", pid, new_p),
                                                ("cloth", "{}.jpg", cid, new_c), ("cloth-mask", "{}.jpg", cid, new_c)]:
                shutil.copy(src / folder / pattern.format(ident), root / folder / pattern.format(new))
            lines.append(f"{new_p}.jpg {new_c}.jpg")
    (root / "test_pairs.txt").write_text("\n".join(lines) + "\n")
    return root


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main(copies: int = 8) -> None:
    with tempfile.TemporaryDirectory() as tmp_str:
        tmp = Path(tmp_str)
        src = make_source(tmp, copies)
        n = 3 * copies
        _, t_copy = timed(lambda: shutil.copytree(src, tmp / "copy"))
        rep1, t1 = timed(lambda: convert_dataset(ConvertConfig("vitonhd", src, tmp / "o1", samples_per_shard=4)))
        rep2, t2 = timed(lambda: convert_dataset(ConvertConfig("vitonhd", src, tmp / "o2", samples_per_shard=4,
                                                               workers=2)))
        val, tv = timed(lambda: validate_shards(tmp / "o1"))
        assert rep1.nsamples == rep2.nsamples == n and val.ok
        print(f"samples: {n} (data/vitonhd-official x{copies}; DensePose approximated, agnostic maps derived)")
        print(f"convert, 1 worker : {n / t1:6.2f} samples/s")
        print(f"convert, 2 workers: {n / t2:6.2f} samples/s   ratio 2w/1w = {t1 / t2:.2f}x")
        print(f"validate          : {n / tv:6.2f} samples/s   ratio validate/convert(1w) = {t1 / tv:.2f}x faster")
        print(f"plain copy of the source is {t1 / t_copy:.0f}x faster than convert (the I/O floor)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8)
