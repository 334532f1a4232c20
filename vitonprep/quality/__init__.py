"""Quality checks on a built sample, each judging a map with evidence independent of it (issue 17).

Layout: ``config`` (thresholds), ``report`` (Flag, QualityReport: the meta.json ``quality`` form), ``geometry``
(keypoint helpers), ``skeleton`` (the pose alone and against face/hand keypoints), ``parse_pose`` (the parse
against the pose), ``masks`` (agnostic, gt and cloth masks), ``garment`` (a person in the garment photo),
``regions`` (the parse's garment regions against the person photo: a hem on the top/trousers boundary, no skin
colour in the garment), ``photo_models`` (the mediapipe models run on the photos, garment answers cached),
``photo_checks`` (the parse against a person segmentation, the number of persons, the worn garment's colour
against the garment photo),
``thresholds`` (each check's bound and a sample's margin to it), ``sample`` (check_sample) and ``shards``
(existing shards). docs/quality.md lists every check.

The names below are resolved on first use (PEP 562): ``vitonprep.config`` reads ``quality.config`` for the pipeline's
thresholds, and importing the whole package there would load OpenCV and mediapipe's wrappers into every importer
of the config (about 0.3 s).
"""


from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY: dict[str, str] = {
    "QualityConfig": "vitonprep.quality.config", "load_quality_config": "vitonprep.quality.config",
    "quality_config_from_mapping": "vitonprep.quality.config", "GarmentFaces": "vitonprep.quality.garment",
    "PhotoModels": "vitonprep.quality.photo_models", "Flag": "vitonprep.quality.report",
    "Outcome": "vitonprep.quality.report", "QualityReport": "vitonprep.quality.report",
    "CHECKS": "vitonprep.quality.sample", "check_sample": "vitonprep.quality.sample",
    "ShardsQuality": "vitonprep.quality.shards", "check_shards": "vitonprep.quality.shards",
    "decode_sample": "vitonprep.quality.shards",
}

if TYPE_CHECKING:  # the eager form, for type checkers and readers
    from vitonprep.quality.config import QualityConfig, load_quality_config, quality_config_from_mapping
    from vitonprep.quality.garment import GarmentFaces
    from vitonprep.quality.photo_models import PhotoModels
    from vitonprep.quality.report import Flag, Outcome, QualityReport
    from vitonprep.quality.sample import CHECKS, check_sample
    from vitonprep.quality.shards import ShardsQuality, check_shards, decode_sample

__all__ = ["CHECKS", "Flag", "GarmentFaces", "Outcome", "PhotoModels", "QualityConfig", "QualityReport",
           "ShardsQuality", "check_sample", "check_shards", "decode_sample", "load_quality_config",
           "quality_config_from_mapping"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vitonprep.quality' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
