"""What the quality checks cost next to the build that makes the samples: CPU ms per sample, and their ratio (issue 17
asks the quality stage to add at most 10 % CPU per person to the default build; bench/bench_build_quality.py times
the whole stage, decoding included, with the build on and off).

Both are measured in this process, in interleaved rounds (the machine's load drifts; a figure timed once at the
end would carry that drift into the ratio), under the build's own one-thread compute policy; the ratio is taken
per round and its median reported:

* **build**: ``build_dataset`` without the quality stage (``quality.enabled: false``), 1 worker (which runs in
  this process), of N and of 2N persons; the per-sample cost is the CPU difference over N, so the once-per-build
  set-up (models, planning) cancels out as it does in a long build;
* **checks**: ``check_sample`` over the 2N built samples, decoded beforehand, the photo models set up once per
  round with an empty garment memo. Rows: the garment memo off (every garment new, the worst case) and on (the
  bench's persons wear the 5 bundled garments in turn, as garments recur over the pairs of a build), and with the
  opt-in ``person_models`` (selfie segmentation and faces on the person photo).

The persons are the 5 VITON-HD and 4 DressCode photos of data/ in turn, each paired with a bundled garment. The
ratios are the figures to quote; absolute times depend on the machine and its load.

    python bench/bench_quality.py [--persons 18] [--rounds 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vitonprep.build import BuildOptions, build_dataset  # noqa: E402
from vitonprep.config import load_pipeline_config  # noqa: E402
from vitonprep.quality import PhotoModels, QualityConfig, check_sample, decode_sample  # noqa: E402
from vitonprep.runner import single_threaded_compute  # noqa: E402
from vitonprep.shards import iter_tar_samples, list_shards  # noqa: E402


def make_raw(tmp: Path, n: int) -> Path:
    """n person photos (the bundled VITON-HD and DressCode ones in turn), each with a bundled garment."""
    persons = sorted((ROOT / "data/samples/person").glob("*.jpg")) + sorted(
        (ROOT / "data/dresscode-photos/person").glob("*.jpg"))
    cloths = sorted((ROOT / "data/samples/cloth").glob("*.jpg"))
    raw = tmp / f"raw{n}"
    (raw / "person").mkdir(parents=True)
    (raw / "cloth").mkdir()
    lines = []
    for i in range(n):
        shutil.copy(persons[i % len(persons)], raw / "person" / f"p{i:04d}.jpg")
        shutil.copy(cloths[i % len(cloths)], raw / "cloth" / f"c{i:04d}.jpg")
        lines.append(f"p{i:04d}.jpg c{i:04d}.jpg")
    (raw / "pairs.txt").write_text("\n".join(lines) + "\n")
    return raw


def build_cpu(raw: Path, out: Path, per_shard: int) -> float:
    """CPU seconds of one in-process build without the quality stage (a fresh output folder each time)."""
    shutil.rmtree(out, ignore_errors=True)
    cfg = load_pipeline_config("default", {"samples_per_shard": per_shard, "quality.enabled": False})
    t0 = time.process_time()
    rep = build_dataset(cfg, raw, out, BuildOptions(workers=1))
    cpu = time.process_time() - t0
    if rep.failures:
        raise SystemExit(f"the bench build failed: {rep.failures[:3]}")
    return cpu


def checks_cpu(samples: list[dict], config: QualityConfig, cache: bool) -> float:
    """CPU seconds of check_sample over the samples, the photo models set up beforehand."""
    models = PhotoModels(cache_size=64 if cache else 0)
    try:
        models.setup()
        t0 = time.process_time()
        for d in samples:
            check_sample(d, config, models)
        return time.process_time() - t0
    finally:
        models.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--persons", type=int, default=18, help="N: the builds make N and 2N samples")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    n = args.persons
    default = QualityConfig()
    rows = {"checks, garment memo off": (default, False), "checks, garment memo on": (default, True),
            "checks + person_models, memo on": (dataclasses.replace(default, person_models=True), True)}
    with tempfile.TemporaryDirectory(prefix="bench_quality_") as tmp, single_threaded_compute():
        tmp_path = Path(tmp)
        raws = {k: make_raw(tmp_path, k) for k in (n, 2 * n)}
        build_cpu(raws[n], tmp_path / "warm", n)  # first imports and caches, not counted
        samples: list[dict] = []
        per_build: list[float] = []
        per_check: dict[str, list[float]] = {k: [] for k in rows}
        for r in range(args.rounds):
            small = build_cpu(raws[n], tmp_path / "small", n)
            large = build_cpu(raws[2 * n], tmp_path / "large", n)
            per_build.append(1000 * (large - small) / n)
            if not samples:
                samples = [decode_sample(s.members, s.key) for t in list_shards(tmp_path / "large")
                           for s in iter_tar_samples(t)]
            for name, (cfg, cache) in rows.items():
                per_check[name].append(1000 * checks_cpu(samples, cfg, cache) / len(samples))
            print(f"round {r + 1}: build {per_build[-1]:.0f} ms/sample; "
                  + "; ".join(f"{k} {v[-1]:.1f}" for k, v in per_check.items()), file=sys.stderr)
    print(f"\n{len(samples)} samples, {args.rounds} interleaved rounds, medians (CPU ms per sample; the ratio is "
          "the median of the rounds' ratios)")
    print(f"{'build without the quality stage':36s} {statistics.median(per_build):8.1f}")
    for name, values in per_check.items():
        ratio = statistics.median([c / b for c, b in zip(values, per_build, strict=True)])
        print(f"{name:36s} {statistics.median(values):8.1f}   {100 * ratio:5.1f} % of the build")

if __name__ == "__main__":
    main()
