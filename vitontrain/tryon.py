"""``vitontrain tryon PERSON CLOTH``'s library twin: one photo + one garment → one try-on image.

The inputs are prepared exactly as ``vitonprep build`` would (its default offline pipeline by default: pose,
person check, parsing, DensePose approximation, cloth mask, agnostic maps), in memory, then decoded with the shard
contract's decoders and sampled like any test pair.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vitontrain.sampling.inference import SamplingConfig, generate, model_device, to_uint8

logger = logging.getLogger(__name__)


@dataclass
class TryOnResult:
    image: np.ndarray            # HWC uint8 at the model size
    sample: dict[str, Any]       # the prepared (decoded) shard-contract sample
    seconds_prepare: float
    seconds_sample: float


def prepare_pair(person: Path, cloth: Path, pipeline: str | Path = "default", category: str | None = None
                 ) -> dict[str, Any]:
    """Run vitonprep's pipeline on one (person, garment) pair; returns the decoded sample.

    Raises ``FileNotFoundError`` for a missing photo and vitonprep's ``SampleError`` when the pipeline rejects the
    photo (no person, several persons, cut off, …) — the message names the stage and the reason.
    """
    from vitonprep.config import load_pipeline_config
    from vitonprep.photos import key_from_name
    from vitonprep.raw import RawItem
    from vitonprep.schema import sample_key
    from vitonprep.stages import Pipeline

    from vitontrain.sampling.sources import decode_encoded

    person, cloth = Path(person).resolve(), Path(cloth).resolve()
    for p, what in ((person, "person photo"), (cloth, "garment photo")):
        if not p.is_file():
            raise FileNotFoundError(f"{what} not found: {p}")
    cfg = load_pipeline_config(pipeline, {"category": category} if category else None)
    root = os.path.commonpath([person.parent, cloth.parent])  # meta records paths relative to it
    pk, ck = key_from_name(person), key_from_name(cloth)
    pair = "paired" if pk == ck else "unpaired"
    item = RawItem(sample_key(pk, ck, pair), str(person), str(cloth), pair, root)
    pipe = Pipeline.from_config(cfg)
    try:
        encoded = pipe.run(item)
    finally:
        pipe.close()
    return decode_encoded(encoded.key, encoded.members)


def tryon(model: Any, person: Path, cloth: Path, cfg: SamplingConfig = SamplingConfig(), height: int = 512,
          width: int = 384, pipeline: str | Path = "default", category: str | None = None) -> TryOnResult:
    """Prepare the pair with vitonprep, then sample one try-on image with ``cfg`` (seeded with ``cfg.seed``)."""
    from vitontrain.data.transforms import collate, to_model_sample

    t0 = time.perf_counter()
    sample = prepare_pair(person, cloth, pipeline, category)
    t_prep = time.perf_counter() - t0
    logger.info("prepared %s with vitonprep pipeline %s in %.1f s", sample["__key__"], pipeline, t_prep)
    batch = collate([to_model_sample(sample, height, width)])
    generator = torch.Generator(device=model_device(model)).manual_seed(cfg.seed)
    t0 = time.perf_counter()
    out = generate(model, batch, cfg, generator)
    t_sample = time.perf_counter() - t0
    logger.info("sampled 1 image in %.2f s (%d UNet calls)", t_sample, out.nfe)
    return TryOnResult(to_uint8(out.images)[0], sample, t_prep, t_sample)
