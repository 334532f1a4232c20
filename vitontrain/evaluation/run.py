"""An evaluation run: the generated images of a ``vitontrain sample`` output, the real test persons, the metrics of
each mode and the JSON report with the whole protocol (docs/evaluation.md).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from vitonprep import resolve_device
from vitontrain.data.shards import decode_sample, raw_samples, shard_urls
from vitontrain.evaluation.extractors import InceptionFeatures, build_inception, build_lpips
from vitontrain.evaluation.metrics import fid_kid, ssim_lpips
from vitontrain.evaluation.protocol import RESIZE_FILTERS, EvalProtocol, ResizeCounter

logger = logging.getLogger(__name__)


def real_person_images(source: Path, split: str | None = "test") -> dict[str, Any]:
    """person id → image (a file path, or a decoded HWC uint8 array for shards) of the real test persons.

    ``source``: vitonprep shards (each sample's ``image.jpg``; ``meta.person_id``), a VITON-HD folder
    (``{split}/image/*.jpg`` or ``image/*.jpg``) or a plain folder of person photos (file stem = person id).
    """
    source = Path(source)
    if not source.is_dir():
        raise FileNotFoundError(f"real-image source not found: {source}")
    if any(source.glob("*.tar")):
        out: dict[str, Any] = {}
        splits: Counter[str] = Counter()  # samples per split, for the message when the asked one has none
        for url in shard_urls(source):
            # the trainer's reader and the contract's decoders (pixel limit, strict JPEG); a damaged shard or
            # member is a ValueError naming shard and sample
            for raw in raw_samples(url):
                meta = decode_sample({k: v for k, v in raw.items() if k in ("__key__", "__url__", "meta.json")})
                meta = meta.get("meta") or {}
                pid = meta.get("person_id") or raw["__key__"].split("__")[0]
                splits[str(meta.get("split"))] += 1
                if split is not None and meta.get("split") not in (None, split):
                    continue
                if pid not in out:
                    if "image.jpg" not in raw:
                        raise ValueError(f"shard {url}: sample {raw['__key__']} has no image.jpg")
                    out[pid] = decode_sample({"__key__": raw["__key__"], "__url__": url,
                                              "image.jpg": raw["image.jpg"]})["image"]
        if not out and splits:
            held = ", ".join(f"{n} of split {name}" for name, n in splits.most_common())
            raise ValueError(f"{source}: 0 samples of split {split}; the shards hold {held}: pass --split "
                             f"{splits.most_common(1)[0][0]}")
        return out
    for folder in ([source / split / "image"] if split else []) + [source / "image", source]:
        if folder.is_dir():
            files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
            if files:
                return {p.stem: p for p in files}
    others = sorted(p.parent.name for p in source.glob("*/image") if p.is_dir())
    if others:  # a VITON-HD folder without the asked split
        raise FileNotFoundError(f"{source}: no {split}/image/ folder; it has {', '.join(o + '/image/' for o in others)}"
                                f": pass --split {others[0]}")
    raise FileNotFoundError(f"{source}: no shards and no person images (looked in {split}/image/, image/, ./)")


# ------------------------------------------------------------------------------------------------- the run
@dataclass
class EvalInput:
    """Generated images of one mode with their person ids (the test list)."""

    files: list[Path] = field(default_factory=list)
    persons: list[str] = field(default_factory=list)
    cloths: list[str] = field(default_factory=list)


def read_generated(generated: Path) -> dict[str, EvalInput]:
    """The test lists of a ``vitontrain sample`` output folder (its ``samples.json``)."""
    manifest_path = Path(generated) / "samples.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{manifest_path} not found: evaluate reads the output folder of vitontrain sample")
    manifest = json.loads(manifest_path.read_text())
    lists: dict[str, EvalInput] = {}
    for item in manifest.get("items", []):
        ei = lists.setdefault(item["mode"], EvalInput())
        path = Path(generated) / item["file"]
        if not path.is_file():
            raise FileNotFoundError(f"{path} is listed in {manifest_path} but missing")
        ei.files.append(path)
        ei.persons.append(item["person"])
        ei.cloths.append(item.get("cloth", ""))
    return lists


def evaluate_run(generated: Path, real_source: Path, protocol: EvalProtocol, split: str | None = "test",
                 report_path: Path | None = None, progress: Callable[[str, int, int], None] | None = None,
                 device: str = "auto") -> dict[str, Any]:
    """Evaluate a ``vitontrain sample`` output against the real test persons; write and return the JSON report.

    Paired: SSIM, LPIPS (generated vs the person's own photo), FID, KID. Unpaired: FID, KID. FID/KID compare with
    the set of all real test person photos of ``real_source``. ``progress(stage, done, total)`` is called as images
    are processed. ``device``: where Inception and LPIPS run (auto = CUDA when torch sees one); it is written into
    the report and does not change the protocol.
    """
    compute = resolve_device(device)  # ConfigError when CUDA is asked for and there is none
    protocol.check_files()
    lists = read_generated(generated)
    if not lists:
        raise ValueError(f"{generated}/samples.json lists no images")
    real = real_person_images(real_source, split)
    if not real:
        raise ValueError(f"no real person images in {real_source}")
    resample = RESIZE_FILTERS[protocol.resize_filter]
    h, w = protocol.height, protocol.width
    resized = {"generated": ResizeCounter(), "real": ResizeCounter()}

    def tick(stage: str, total: int) -> Callable[[int], None]:
        done = [0]

        def f(n: int) -> None:
            done[0] += n
            if progress is not None:
                progress(stage, done[0], total)
        return f

    real_ids = sorted(real)
    real_imgs = {pid: resized["real"].load(real[pid], h, w, resample) for pid in real_ids}
    inception = InceptionFeatures(build_inception(protocol.inception_weights, protocol.feature_dim),
                                  protocol.batch_size, compute)
    lpips_net = build_lpips(protocol.lpips_backbone_weights, protocol.lpips_linear_weights, protocol.lpips_net)
    real_feats = inception([real_imgs[p] for p in real_ids], tick("real features", len(real_ids)))

    results: dict[str, Any] = {}
    for mode in ("paired", "unpaired"):
        if mode not in lists:
            continue
        ei = lists[mode]
        fake = [resized["generated"].load(p, h, w, resample) for p in ei.files]
        res: dict[str, Any] = {"n": len(fake)}
        if mode == "paired":
            missing = sorted({p for p in ei.persons if p not in real_imgs})
            if missing:
                raise ValueError(f"paired images of persons {missing[:5]} have no real photo in {real_source}")
            res.update(ssim_lpips(fake, [real_imgs[p] for p in ei.persons], lpips_net, protocol.batch_size,
                                  tick("paired SSIM/LPIPS", len(fake)), compute))
        fake_feats = inception(fake, tick(f"{mode} features", len(fake)))
        res.update(fid_kid(real_feats, fake_feats, protocol.kid_subsets, protocol.kid_subset_size))
        res["fid_reference"] = {"n_real": len(real_ids)}
        results[mode] = res
        logger.info("%s: %s", mode, {k: v for k, v in res.items() if isinstance(v, float)})

    report = {
        "generated": str(generated),
        "real_source": str(real_source),
        "split": split,
        "protocol": protocol.describe(),
        "device": str(compute),
        "resized": {k: asdict(v) for k, v in resized.items()},
        "results": results,
        "test_lists": {mode: [[str(f.relative_to(generated)), p, c] for f, p, c in
                              zip(ei.files, ei.persons, ei.cloths, strict=True)] for mode, ei in lists.items()},
        "real_persons": real_ids,
        "sampling": json.loads((Path(generated) / "samples.json").read_text()).get("sampling"),
    }
    if resized["generated"].enlarged or resized["real"].enlarged:
        logger.warning("some images were enlarged to %dx%d (see 'resized' in the report)", h, w)
    if report_path is not None:
        Path(report_path).parent.mkdir(parents=True, exist_ok=True)
        Path(report_path).write_text(json.dumps(report, indent=1))
    return report
