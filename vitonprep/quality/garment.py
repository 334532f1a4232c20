"""Does the garment photo hold a person? A face found on it by mediapipe's detector (its own model, not one the
cloth maps were made with)."""

from __future__ import annotations

from typing import Any

import numpy as np

from vitonprep.quality.config import QualityConfig
from vitonprep.quality.photo_models import PhotoModels
from vitonprep.quality.report import Outcome

__all__ = ["GarmentFaces", "garment_face"]


def garment_face(models: PhotoModels, cloth: np.ndarray, cfg: QualityConfig,
                 memo: dict[str, Any] | None = None) -> Outcome:
    """``garment_face``: the best face-detector score on the garment photo (``memo``: the garment's, if known)."""
    score = models.garment_face_score(cloth, memo)
    if score < cfg.max_garment_face:
        return Outcome("garment_face", score)
    return Outcome("garment_face", score, f"the garment photo holds a person (a face, detector score {score:.2f})")


class GarmentFaces(PhotoModels):
    """The photo models under the name the callers of ``check_sample(..., faces)`` know; calling it runs the
    garment face check alone."""

    def __call__(self, cloth: np.ndarray, cfg: QualityConfig) -> Outcome:
        return garment_face(self, cloth, cfg)
