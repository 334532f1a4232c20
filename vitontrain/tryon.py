"""``vitontrain tryon PERSON CLOTH``'s library twin: one photo + one garment → one try-on image.

The inputs are prepared exactly as ``vitonprep build`` would (``vitonprep.prepare_pair``: its default offline
pipeline by default — pose, person check, parsing, DensePose approximation, cloth mask, agnostic maps), in memory,
then decoded with the shard contract's decoders and sampled like any test pair.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import vitonprep
from vitontrain.data.transforms import collate, to_model_sample
from vitontrain.sampling.inference import SamplingConfig, generate, model_device, to_uint8
from vitontrain.sampling.samplers import StepCallback
from vitontrain.sampling.sources import decode_encoded

logger = logging.getLogger(__name__)


@dataclass
class TryOnResult:
    image: np.ndarray            # HWC uint8 at the model size
    sample: dict[str, Any]       # the prepared (decoded) shard-contract sample
    seconds_prepare: float
    seconds_sample: float


def prepare_pair(person: Path, cloth: Path, pipeline: str | Path = "default", category: str | None = None
                 ) -> dict[str, Any]:
    """``vitonprep.prepare_pair`` on one (person, garment) pair, decoded as the trainer decodes shards.

    Raises ``FileNotFoundError`` for a missing photo and vitonprep's ``SampleError`` when the pipeline rejects the
    photo (no person, several persons, cut off, …) — the message names the stage and the reason.
    """
    encoded = vitonprep.prepare_pair(person, cloth, pipeline, category)
    return decode_encoded(encoded.key, encoded.members)


def tryon(model: Any, person: Path, cloth: Path, cfg: SamplingConfig | None = None, height: int = 512,
          width: int = 384, pipeline: str | Path = "default", category: str | None = None,
          on_step: StepCallback | None = None) -> TryOnResult:
    """Prepare the pair with vitonprep, then sample one try-on image with ``cfg`` (default: the official settings;
    seeded with ``cfg.seed``). ``on_step(i, n)`` is called after each of the sampler's ``n`` steps (progress)."""
    cfg = cfg if cfg is not None else SamplingConfig()
    t0 = time.perf_counter()
    sample = prepare_pair(person, cloth, pipeline, category)
    t_prep = time.perf_counter() - t0
    logger.info("prepared %s with vitonprep pipeline %s in %.1f s", sample["__key__"], pipeline, t_prep)
    batch = collate([to_model_sample(sample, height, width)])
    generator = torch.Generator(device=model_device(model)).manual_seed(cfg.seed)
    t0 = time.perf_counter()
    out = generate(model, batch, cfg, generator, on_step)
    t_sample = time.perf_counter() - t0
    logger.info("sampled 1 image in %.2f s (%d UNet calls)", t_sample, out.nfe)
    return TryOnResult(to_uint8(out.images)[0], sample, t_prep, t_sample)
