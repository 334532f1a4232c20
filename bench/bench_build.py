"""End-to-end `vitonprep build` throughput with the default offline pipeline, and a per-stage breakdown.

Prints persons/s with 1 and 2 worker processes on the bundled photos replicated to N persons at 768x1024, the
2-vs-1 ratio (the figure that travels across machines), the per-stage share of the time, and peak RSS of the
driver and workers for two input sizes (memory must stay flat as the input grows).
"""

from __future__ import annotations

import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vitonprep.build import BuildOptions, build_dataset  # noqa: E402
from vitonprep.config import load_pipeline_config  # noqa: E402


def make_raw(tmp: Path, n: int) -> Path:
    """n person photos (the 5 VITON-HD + 4 DressCode photos, cycled) each paired with a garment."""
    persons = sorted((ROOT / "data/samples/person").glob("*.jpg")) + sorted(
        (ROOT / "data/dresscode-photos/person").glob("*.jpg"))
    cloths = sorted((ROOT / "data/samples/cloth").glob("*.jpg"))
    raw = tmp / f"raw{n}"
    (raw / "person").mkdir(parents=True)
    (raw / "cloth").mkdir()
    lines = []
    for i in range(n):
        p, c = persons[i % len(persons)], cloths[i % len(cloths)]
        shutil.copy(p, raw / "person" / f"p{i:04d}.jpg")
        shutil.copy(c, raw / "cloth" / f"c{i:04d}.jpg")
        lines.append(f"p{i:04d}.jpg c{i:04d}.jpg")
    (raw / "pairs.txt").write_text("\n".join(lines) + "\n")
    return raw


def run(raw: Path, out: Path, workers: int, per_shard: int):
    cfg = load_pipeline_config("default", {"samples_per_shard": per_shard})
    t0 = time.perf_counter()
    rep = build_dataset(cfg, raw, out, BuildOptions(workers=workers))
    return rep, time.perf_counter() - t0


def main(n: int = 24) -> None:
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        raw = make_raw(tmp, n)
        run(make_raw(tmp, 2), tmp / "warm", 1, 2)  # import and model load outside the timing
        rep1, t1 = run(raw, tmp / "o1", 1, max(1, n // 4))
        rep2, t2 = run(raw, tmp / "o2", 2, max(1, n // 4))
        print(f"persons: {n} at 768x1024, default offline pipeline; samples made: {rep1.nsamples}/{rep2.nsamples}")
        print(f"1 worker : {rep1.nsamples / t1:5.2f} persons/s")
        print(f"2 workers: {rep2.nsamples / t2:5.2f} persons/s   ratio 2w/1w = {t1 / t2:.2f}x")
        total = sum(rep1.stage_seconds.values())
        print("per-stage share of the 1-worker time (seconds per person):")
        for stage, sec in sorted(rep1.stage_seconds.items(), key=lambda kv: -kv[1]):
            print(f"  {stage:12s} {sec / total:6.1%}  {sec / max(rep1.nsamples, 1) * 1000:7.1f} ms")
        rss_small = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        raw_big = make_raw(tmp, 2 * n)
        run(raw_big, tmp / "o3", 2, max(1, n // 4))
        rss_big = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(f"peak RSS of worker processes: {rss_small / 1024:.0f} MiB after {n} persons, "
              f"{rss_big / 1024:.0f} MiB after {2 * n} more (flat if equal); driver {self_rss / 1024:.0f} MiB")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 24)
