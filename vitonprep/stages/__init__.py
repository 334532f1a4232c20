"""The build pipeline: small stages with declared inputs and outputs over a typed sample context.

Modules: `base` (the `Stage` interface and `SampleContext`), `load`, `models` (one stage per model back-end
kind), `derive` (the deterministic maps), `optional` (caption, garment-wearer pose), `encode` (the shard sample),
`quality` (the quality checks on it) and `pipeline`. Back-ends
are chosen by name in `vitonprep.backends.registry`. The names below are the package's public face (others
import ``from vitonprep.stages import Pipeline``).
"""

from vitonprep.stages.base import CONTEXT_FIELDS, INPUT_KEYS, BackendStage, SampleContext, Stage
from vitonprep.stages.derive import DeriveStage
from vitonprep.stages.encode import RAW_SOURCE, EncodeStage
from vitonprep.stages.load import LoadStage
from vitonprep.stages.models import ClothMaskStage, DensePoseStage, ParsingStage, PersonCheckStage, PoseStage
from vitonprep.stages.optional import CaptionStage, GarmentPoseStage
from vitonprep.stages.pipeline import Pipeline
from vitonprep.stages.quality import QualityCounts, QualityStage

#: the context type's former name (importers that annotate with it keep working)
Context = SampleContext

__all__ = ["Pipeline", "Stage", "BackendStage", "SampleContext", "Context", "CONTEXT_FIELDS", "INPUT_KEYS",
           "LoadStage", "PoseStage", "PersonCheckStage", "ParsingStage", "DensePoseStage", "ClothMaskStage",
           "DeriveStage", "CaptionStage", "GarmentPoseStage", "EncodeStage", "QualityStage", "QualityCounts",
           "RAW_SOURCE"]
