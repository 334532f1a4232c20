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
"""

from vitonprep.quality.config import QualityConfig, load_quality_config, quality_config_from_mapping
from vitonprep.quality.garment import GarmentFaces
from vitonprep.quality.photo_models import PhotoModels
from vitonprep.quality.report import Flag, Outcome, QualityReport
from vitonprep.quality.sample import CHECKS, check_sample
from vitonprep.quality.shards import ShardsQuality, check_shards, decode_sample

__all__ = ["CHECKS", "Flag", "GarmentFaces", "Outcome", "PhotoModels", "QualityConfig", "QualityReport",
           "ShardsQuality", "check_sample", "check_shards", "decode_sample", "load_quality_config",
           "quality_config_from_mapping"]
