"""Does the garment photo hold a person? A face found on it by mediapipe's detector (its own model, not one the
cloth maps were made with)."""

from __future__ import annotations

import numpy as np

from vitonprep.backends.person_mediapipe import MediapipePerson
from vitonprep.quality.config import QualityConfig
from vitonprep.quality.report import Outcome

__all__ = ["GarmentFaces"]


class GarmentFaces:
    """Face detection on garment photos; the mediapipe graph is built on first use and kept."""

    def __init__(self) -> None:
        self._person = MediapipePerson()

    def __call__(self, cloth: np.ndarray, cfg: QualityConfig) -> Outcome:
        faces = self._person.detect_faces(np.ascontiguousarray(cloth))
        score = max((f[4] for f in faces), default=0.0)
        if score < cfg.max_garment_face:
            return Outcome("garment_face", float(score))
        return Outcome("garment_face", float(score), f"the garment photo holds a person (a face, detector score "
                                                     f"{score:.2f})")

    def close(self) -> None:
        self._person.close()
