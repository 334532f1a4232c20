"""``vitontrain sample``'s library twin: batched try-on over a source, images + grids + a manifest on disk.

Layout of ``out`` (the official inference layout plus two extras):

* ``pair/{person}_{cloth}.jpg``, ``unpair/{person}_{cloth}.jpg`` — one try-on per sample, at the model size
  (H×W), JPEG quality 95;
* ``grid_pair.jpg``, ``grid_unpair.jpg`` — the first ``grid_rows`` samples of each mode, one row each: person,
  garment, agnostic, result;
* ``samples.json`` — sampling config, source, model size and one record per image (file, mode, person, cloth,
  seconds). ``vitontrain evaluate`` reads its test lists from it.

:func:`load_sampling_model` builds the model to sample with: a checkpoint written by ``vitontrain fit`` carries its
resolved config and rebuilds its model alone (frozen weights refilled from its run's init files); an official or
safetensors file needs the model config.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
from PIL import Image

from vitonprep import ConfigError
from vitonprep.schema import UnsafeName, safe_path
from vitontrain.checkpoints import read_checkpoint
from vitontrain.data.transforms import collate, to_model_sample
from vitontrain.models.instantiate import load_config
from vitontrain.sampling.inference import (
    MissingFileError,
    SamplingConfig,
    generate,
    load_inference_model,
    model_device,
    resolve_model_config,
    to_uint8,
)
from vitontrain.sampling.sources import MODES, iter_samples
from vitontrain.train.weights import checkpoint_config, restore_net

logger = logging.getLogger(__name__)

MANIFEST = "samples.json"
JPEG_QUALITY = 95
#: the model config used for a checkpoint that carries none (an official VITONHD.ckpt)
DEFAULT_MODEL_CONFIG = "stableviton"
#: the official model size, for a config without a ``data`` section
DEFAULT_SIZE = (512, 384)


def first_difference(a: Any, b: Any, where: str = "model") -> str | None:
    """The dotted key where two config mappings first differ (None when equal)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            if key not in a or key not in b:
                return f"{where}.{key}"
            found = first_difference(a[key], b[key], f"{where}.{key}")
            if found:
                return found
        return None
    return None if a == b else where


def load_sampling_model(checkpoint: str | Path | None, config: str | Path | None = None,
                        device: str | torch.device = "cpu", random_init: bool = False,
                        sample_posterior: bool | None = None) -> Any:
    """The model to sample with, in eval mode on ``device``.

    ``config`` None: the checkpoint's own config when it carries one (``vitontrain fit`` checkpoints), else
    ``pipelines/train/stableviton.yaml``. Given with a checkpoint that carries a config, both ``model`` sections
    must be equal: a :class:`ConfigError` names the first key that differs (the checkpoint's config is the one its
    weights were trained with; there is no silent precedence). Without a checkpoint, ``random_init`` builds random
    weights (smoke runs)."""
    if checkpoint is None or not Path(checkpoint).is_file():
        return load_inference_model(config or DEFAULT_MODEL_CONFIG, checkpoint, device, random_init, sample_posterior)
    # read once here (weights only, memory-mapped): an unsafe or unreadable file is refused before any model is built
    state = read_checkpoint(checkpoint)
    own = checkpoint_config(state, str(checkpoint))
    if own is None:
        return load_inference_model(config or DEFAULT_MODEL_CONFIG, checkpoint, device, random_init, sample_posterior)
    if config is not None:
        path = resolve_model_config(config)
        given = load_config(path).get("model")
        diff = first_difference(own.model, given)
        if diff is not None:
            raise ConfigError(f"--config {path} disagrees with the config stored in {checkpoint} at {diff}; the "
                              f"checkpoint rebuilds its own model: leave --config out")
    model, _ = restore_net(checkpoint, state)
    if sample_posterior is not None:
        model.sample_posterior = sample_posterior
    model.configure_trainable("none")
    logger.info("model rebuilt from the config stored in %s", checkpoint)
    return model.to(device).eval()


def model_size(checkpoint: str | Path | None, config: str | Path | None = None) -> tuple[int, int]:
    """The (height, width) a model was trained at, the default size to sample at: ``data.height``/``data.width`` of
    the config a ``vitontrain fit`` checkpoint carries, else of the ``config`` YAML (default ``stableviton``),
    else 512x384 (a tiny 256x192 model samples 256x192, not the official size)."""
    if checkpoint is not None and Path(checkpoint).is_file():
        own = checkpoint_config(read_checkpoint(checkpoint), str(checkpoint))  # memory-mapped read, cheap
        if own is not None:
            return own.data.height, own.data.width
    data = load_config(resolve_model_config(config or DEFAULT_MODEL_CONFIG)).get("data")
    h, w = (data.get("height"), data.get("width")) if isinstance(data, dict) else (None, None)
    if isinstance(h, int) and isinstance(w, int) and not isinstance(h, bool) and not isinstance(w, bool):
        return h, w
    return DEFAULT_SIZE


__all__ = ["DEFAULT_MODEL_CONFIG", "DEFAULT_SIZE", "MissingFileError", "SampleReport", "load_sampling_model",
           "model_size", "output_path", "sample_dataset", "write_grid"]


@dataclass
class SampleReport:
    out: Path
    items: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"key", "reason"}: samples not written
    seconds: float = 0.0
    grids: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.items)

    @property
    def seconds_per_image(self) -> float:
        return self.seconds / max(self.count, 1)


def _batched(samples: Iterable[dict[str, Any]], n: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for s in samples:
        batch.append(s)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


def output_path(out: Path, mode: str, meta: dict[str, Any], key: str) -> Path:
    """``OUT/{pair|unpair}/{person}_{cloth}.jpg`` (official naming) from the sample's meta. The names come from the
    shard, which is untrusted: they must be plain names (``vitonprep.schema.safe_path``, the rule every file name
    derived from shard data follows), so no crafted meta.json can place a file outside OUT; else UnsafeName."""
    person = meta.get("person_id") or key
    cloth = meta.get("cloth_id") or person
    return safe_path(out, f"{MODES[mode]}/{{person_id}}_{{cloth_id}}.jpg", person_id=person, cloth_id=cloth)


def write_grid(rows: list[list[np.ndarray]], path: Path) -> None:
    """Rows of equally sized HWC uint8 tiles → one JPEG."""
    grid = np.concatenate([np.concatenate(row, axis=1) for row in rows], axis=0)
    Image.fromarray(grid).save(path, quality=JPEG_QUALITY)


def sample_dataset(model: Any, source: Path, out: Path, cfg: SamplingConfig, height: int = 512, width: int = 384,
                   modes: tuple[str, ...] = ("paired", "unpaired"), batch_size: int = 4, limit: int | None = None,
                   split: str | None = None, grid_rows: int = 8,
                   on_batch: Callable[[int], None] | None = None,
                   on_step: Callable[[int, int], None] | None = None,
                   extra_manifest: dict[str, Any] | None = None) -> SampleReport:
    """Generate a try-on for every sample of ``source`` in ``modes``; see the module doc for the layout.

    ``on_batch(n)`` is called after each batch with its size, ``on_step(i, n)`` after each sampler step.
    """
    out = Path(out)
    for m in modes:
        (out / MODES[m]).mkdir(parents=True, exist_ok=True)
    device = model_device(model)
    report = SampleReport(out)
    grid: dict[str, list[list[np.ndarray]]] = {m: [] for m in modes}
    t_run = time.perf_counter()
    for index, chunk in enumerate(_batched(iter_samples(source, modes, split, limit), batch_size)):
        model_samples = [to_model_sample(s, height, width) for s in chunk]
        batch = collate(model_samples)
        generator = torch.Generator(device=device).manual_seed(cfg.seed + index)
        t0 = time.perf_counter()
        result = generate(model, batch, cfg, generator, on_step)
        dt = time.perf_counter() - t0
        images = to_uint8(result.images)
        for i, sample in enumerate(chunk):
            meta = sample.get("meta") or {}
            mode = meta["pair"]
            try:
                path = output_path(out, mode, meta, sample["__key__"])
            except UnsafeName as exc:  # one crafted sample is reported and skipped; the run goes on
                logger.warning("skipped sample %s: %s", sample["__key__"], exc)
                report.skipped.append({"key": sample["__key__"], "reason": str(exc)})
                continue
            rel = path.relative_to(out).as_posix()
            Image.fromarray(images[i]).save(path, quality=JPEG_QUALITY)
            report.items.append({"file": rel, "mode": mode, "key": sample["__key__"],
                                 "person": meta.get("person_id", sample["__key__"]),
                                 "cloth": meta.get("cloth_id", ""), "seconds": round(dt / len(chunk), 4)})
            if len(grid[mode]) < grid_rows:
                ms = model_samples[i]
                tiles = to_uint8(torch.stack([ms["image"], ms["cloth"], ms["agn"]]))
                grid[mode].append([tiles[0], tiles[1], tiles[2], images[i]])
        logger.info("batch %d: %d image(s) in %.2f s — %.2f s/image (%d UNet calls each)", index, len(chunk), dt,
                    dt / len(chunk), result.nfe)
        if on_batch is not None:
            on_batch(len(chunk))
    report.seconds = time.perf_counter() - t_run
    for m in modes:
        folder = out / MODES[m]
        if not any(folder.iterdir()):
            folder.rmdir()  # e.g. no paired samples in the source: no empty pair/ folder
    for mode, rows in grid.items():
        if rows:
            name = f"grid_{MODES[mode]}.jpg"
            write_grid(rows, out / name)
            report.grids.append(name)
    manifest = {
        "source": str(source),
        "modes": list(modes),
        "split": split,
        "size": [height, width],
        "sampling": cfg.to_dict(),
        "batch_size": batch_size,
        "seconds": round(report.seconds, 3),
        "seconds_per_image": round(report.seconds_per_image, 4),
        **(extra_manifest or {}),
        "items": report.items,
        "skipped": report.skipped,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return report
