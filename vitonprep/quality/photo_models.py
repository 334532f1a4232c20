"""The mediapipe models the checks run on the photos themselves (their own models, not the ones the maps were made
with): the face detector on the garment photo, and - opt-in, ``person_models`` - the selfie segmentation and the
face detector on the person photo.

The same garment is worn in many pairs of a build, so its answer is cached by the garment photo's content within
the process (a digest of the decoded pixels; a small LRU). Person photos are not cached: each sample has its own.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

import cv2
import numpy as np

from vitonprep.backends.person_mediapipe import MediapipePerson

__all__ = ["PhotoModels", "PersonEvidence"]

#: the person photo is segmented at this width: the selfie model itself sees 256x256, so a larger input only costs
#: the resize inside the graph
_SEG_WIDTH = 256


@dataclass(frozen=True)
class PersonEvidence:
    """What the person photo shows on its own: a person mask (all persons, at ``scale`` of the photo's size) and
    the faces found (x0, y0, x1, y1, score) in the photo's pixels."""

    mask: np.ndarray
    scale: float
    faces: tuple[tuple[int, int, int, int, float], ...]


def _digest(rgb: np.ndarray) -> bytes:
    """A digest of the decoded photo (shape and every pixel: two garments differ somewhere)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(repr(rgb.shape).encode())
    h.update(np.ascontiguousarray(rgb).data)
    return h.digest()


class PhotoModels:
    """mediapipe graphs built on first use and kept; not thread-safe, like the back-end it wraps.

    ``cache_size``: garment photos whose answer is kept (0 = no cache; the bench measures both)."""

    def __init__(self, cache_size: int = 256):
        self._person = MediapipePerson()
        self._cache: OrderedDict[bytes, float] = OrderedDict()
        self._cache_size = cache_size
        self.cache_hits = 0

    def setup(self) -> "PhotoModels":
        self._person.setup()
        return self

    def garment_face_score(self, cloth: np.ndarray) -> float:
        """The best face-detector score on the garment photo (0 when no face), cached by the photo's content."""
        key = _digest(cloth) if self._cache_size else b""
        if key in self._cache:
            self._cache.move_to_end(key)
            self.cache_hits += 1
            return self._cache[key]
        faces = self._person.detect_faces(np.ascontiguousarray(cloth, np.uint8))
        score = float(max((f[4] for f in faces), default=0.0))
        if self._cache_size:
            self._cache[key] = score
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return score

    def person_evidence(self, image: np.ndarray) -> PersonEvidence:
        """Selfie segmentation (thresholded at 0.5, as the person back-end does) and faces of the person photo."""
        rgb = np.ascontiguousarray(image, np.uint8)
        h, w = rgb.shape[:2]
        scale = min(1.0, _SEG_WIDTH / w)
        small = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        mask = self._person.segment(small) > 0.5
        return PersonEvidence(mask, scale, tuple(self._person.detect_faces(rgb)))

    def close(self) -> None:
        self._person.close()
        self._cache.clear()
