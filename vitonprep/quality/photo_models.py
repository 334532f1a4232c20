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
from typing import Any

import cv2
import numpy as np

from vitonprep.backends.person_mediapipe import MediapipePerson

__all__ = ["PhotoModels", "PersonEvidence"]

#: the person photo is segmented at this width: the selfie model itself sees 256x256, so a larger input only costs
#: the resize inside the graph
_SEG_WIDTH = 256
#: share of a face box on the person segmentation for the face to be a person's (see garment_face_score)
_ON_PERSON = 0.5


@dataclass(frozen=True)
class PersonEvidence:
    """What the person photo shows on its own: a person mask (all persons, at ``scale`` of the photo's size) and
    the faces found (x0, y0, x1, y1, score) in the photo's pixels."""

    mask: np.ndarray
    scale: float
    faces: tuple[tuple[int, int, int, int, float], ...]


def _digest(rgb: np.ndarray) -> bytes:
    """SHA-256 of the photo's shape and every 4th pixel row: two garment photos differ on far more rows than 3 in
    4, and hashing a quarter of the rows costs a quarter (all of them: 1.7 ms for 768x1024)."""
    h = hashlib.sha256(repr(rgb.shape).encode())
    h.update(np.ascontiguousarray(rgb[::4]).data)
    return h.digest()


class PhotoModels:
    """mediapipe graphs built on first use and kept, and a per-garment memo; not thread-safe, like the back-end
    it wraps.

    ``cache_size``: garment photos whose answers are kept (0 = no cache; the bench measures both)."""

    def __init__(self, cache_size: int = 256):
        self._person = MediapipePerson()
        self._cache: OrderedDict[bytes, dict[str, Any]] = OrderedDict()
        self._cache_size = cache_size
        self.cache_hits = 0

    def setup(self) -> "PhotoModels":
        self._person.setup()
        return self

    def garment_memo(self, cloth: np.ndarray) -> dict[str, Any]:
        """The memo of this garment photo: what the checks computed from the garment photo alone, by name (a new
        empty one when the photo was not seen, or the cache is off)."""
        if not self._cache_size:
            return {}
        key = _digest(cloth)
        memo = self._cache.get(key)
        if memo is not None:
            self._cache.move_to_end(key)
            self.cache_hits += 1
            return memo
        memo = self._cache[key] = {}
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return memo

    def garment_face_score(self, cloth: np.ndarray, memo: dict[str, Any] | None = None) -> float:
        """The best face-detector score among the faces on the garment photo that lie on a person (0 when none),
        kept in the garment's memo.

        A face counts when at least half its box is person to the selfie segmentation: a real person's face
        always is (0.75 to 1.0 on every bundled and graded person photo), while a face printed on a T-shirt or
        found in a fabric's texture lies on a garment the segmentation does not call a person (0.0 and 0.01 on
        the two such garment photos of data/eval). The segmentation runs only when a face was found."""
        memo = self.garment_memo(cloth) if memo is None else memo
        if "face" not in memo:
            rgb = np.ascontiguousarray(cloth, np.uint8)
            faces = self._person.detect_faces(rgb)
            person = self._person.segment(rgb) > 0.5 if faces else None
            memo["face"] = float(max((f[4] for f in faces if person[f[1]:f[3], f[0]:f[2]].mean() >= _ON_PERSON),
                                     default=0.0))
        return memo["face"]

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
