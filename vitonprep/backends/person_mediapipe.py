"""Person mask, person count and framing checks with mediapipe 0.10.21 (models inside the wheel only).

Models: ``SelfieSegmentation`` (model 0, the general 256x256 model) for a mask of *all* persons,
``FaceDetection(model_selection=1)`` (full range, faces up to ~5 m) for counting persons, and - when a
:class:`~vitonprep.backends.results.PoseResult` is passed in - the BlazePose segmentation and landmarks of
the main person.

Choices, measured on the 3 official VITON-HD persons against the silhouette of their official CIHP parse
(labels > 0), IoU of the mask thresholded at 0.5:

=====================  ======  ======  ======  =====
mask                   00891   03615   07445   mean
=====================  ======  ======  ======  =====
SelfieSegmentation 0   0.948   0.946   0.964   0.952
SelfieSegmentation 1   0.947   0.862   0.962   0.924
BlazePose mask         0.969   0.976   0.964   0.970
=====================  ======  ======  ======  =====

Hence :meth:`MediapipePerson.person_mask` returns the BlazePose mask of the main person when a pose result
with a mask is given, else the SelfieSegmentation model-0 mask (which covers every person in the image).

:meth:`MediapipePerson.check_person` counts persons as the larger of (a) faces found by the full-range face
detector (score >= ``min_face_confidence``) and (b) connected blobs of the SelfieSegmentation mask that are
large (>= ``min_blob_image_frac`` of the image and >= ``min_blob_rel`` of the largest blob). With a pose,
faces whose centre lies on the main person's torso (between the shoulders, below the shoulder line:
T-shirt prints) are not counted. Faces of a person whose head is cut off at the top are often not found; the
blob count covers that case. Two persons whose silhouettes touch make one blob; their faces still count.

Not thread-safe; picklable before and after :meth:`setup` (mediapipe objects are not pickled).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from vitonprep.backends._mediapipe import MediapipeGraphs, import_mediapipe
from vitonprep.backends.protocols import Backend, PhotoRect
from vitonprep.backends.results import CUT_OFF_SIDES, NoPersonError, PersonCheck, PoseResult

logger = logging.getLogger(__name__)

NAME = "person-mediapipe"

__all__ = [
    "NAME",
    "MediapipePersonConfig",
    "MediapipePerson",
    "person_mask",
    "check_person",
    "NoPersonError",
]

# BlazePose landmark ids.
_NOSE, _L_EYE, _R_EYE, _L_EAR, _R_EAR = 0, 2, 5, 7, 8
_L_SHO, _R_SHO, _L_HIP, _R_HIP = 11, 12, 23, 24
_FEET = (27, 28, 29, 30, 31, 32)


@dataclass(frozen=True)
class MediapipePersonConfig:
    selfie_model: int = 0               # measured better than 1 against the official parse (see docstring)
    mask_threshold: float = 0.5
    min_face_confidence: float = 0.5
    min_blob_image_frac: float = 0.01   # a person blob covers at least 1 % of the image ...
    min_blob_rel: float = 0.25          # ... and at least a quarter of the largest blob
    border_touch_frac: float = 0.01     # a side is "touched" when >= 1 % of its pixels are person


def _check_rgb(rgb) -> np.ndarray:
    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
        raise ValueError(f"expected an H x W x 3 uint8 RGB image, got {a.shape} {a.dtype}")
    return np.ascontiguousarray(a)


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    ys = np.flatnonzero(mask.any(1))
    xs = np.flatnonzero(mask.any(0))
    if ys.size == 0:
        return None
    return int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1


class MediapipePerson(MediapipeGraphs, Backend):
    """Person mask / count / framing back-end with lazy :meth:`setup`; the call is `check_person`."""

    NAME = NAME
    KIND = "person"
    APPROXIMATE = False
    LICENCE = "mediapipe models (Apache-2.0)"
    Config = MediapipePersonConfig
    PHOTO_RECT = True
    name = NAME

    _GRAPHS = ("_seg", "_faces")

    def __init__(self, config: MediapipePersonConfig | None = None, weights_dir: object = None):
        self.config = config if config is not None else MediapipePersonConfig()
        if self.config.selfie_model not in (0, 1):
            raise ValueError(f"selfie_model must be 0 or 1, got {self.config.selfie_model}")
        self._seg = None
        self._faces = None

    # ------------------------------------------------------------------ lifecycle
    def setup(self) -> "MediapipePerson":
        if self._seg is not None:
            return self
        mp = import_mediapipe()

        with self._graphs_built():
            self._seg = mp.solutions.selfie_segmentation.SelfieSegmentation(
                model_selection=self.config.selfie_model)
            self._faces = mp.solutions.face_detection.FaceDetection(
                model_selection=1, min_detection_confidence=self.config.min_face_confidence)
        logger.debug("mediapipe person back-end ready (selfie model %d)", self.config.selfie_model)
        return self

    # ------------------------------------------------------------------ stages
    def segment(self, rgb: np.ndarray) -> np.ndarray:
        """SelfieSegmentation: H x W float32 person probability (all persons)."""
        rgb = _check_rgb(rgb)
        self.setup()
        res = self._process("_seg", rgb)
        if res.segmentation_mask is None:  # pragma: no cover - mediapipe always returns a mask
            return np.zeros(rgb.shape[:2], np.float32)
        return np.clip(np.asarray(res.segmentation_mask, dtype=np.float32), 0.0, 1.0)

    def detect_faces(self, rgb: np.ndarray) -> list[tuple[int, int, int, int, float]]:
        """Full-range face detection: [(x0, y0, x1, y1, score)] clipped to the image."""
        rgb = _check_rgb(rgb)
        self.setup()
        h, w = rgb.shape[:2]
        res = self._process("_faces", rgb)
        out = []
        for d in res.detections or []:
            b = d.location_data.relative_bounding_box
            x0, y0 = max(0, int(round(b.xmin * w))), max(0, int(round(b.ymin * h)))
            x1, y1 = min(w, int(round((b.xmin + b.width) * w))), min(h, int(round((b.ymin + b.height) * h)))
            score = float(d.score[0]) if d.score else 0.0
            if x1 > x0 and y1 > y0 and score >= self.config.min_face_confidence:
                out.append((x0, y0, x1, y1, score))
        return out

    def person_mask(self, rgb: np.ndarray, pose: PoseResult | None = None) -> np.ndarray:
        """Boolean H x W mask: the BlazePose mask of ``pose`` if it has one, else SelfieSegmentation."""
        rgb = _check_rgb(rgb)
        if pose is not None and pose.person_mask is not None and pose.person_mask.shape == rgb.shape[:2]:
            return pose.person_mask > self.config.mask_threshold
        return self.segment(rgb) > self.config.mask_threshold

    # ------------------------------------------------------------------ checks
    def _blobs(self, mask: np.ndarray) -> tuple[np.ndarray, list[int]]:
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
        if n <= 1:
            return labels, []
        areas = stats[1:, cv2.CC_STAT_AREA]
        limit = max(self.config.min_blob_image_frac * mask.size, self.config.min_blob_rel * areas.max())
        keep = [i + 1 for i in np.argsort(-areas) if areas[i] >= limit]
        return labels, keep

    def __call__(self, rgb: np.ndarray, pose: PoseResult | None = None, rect: PhotoRect | None = None
                 ) -> PersonCheck:
        return self.check_person(rgb, pose, rect)

    def check_person(self, rgb: np.ndarray, pose: PoseResult | None = None, rect: PhotoRect | None = None
                     ) -> PersonCheck:
        """Count persons, box the main one and report the body ends cut by the frame (``rect``: the photo on the
        canvas, default all of it; the pad bands of ``fit: pad`` are out of frame)."""
        rgb = _check_rgb(rgb)
        h, w = rgb.shape[:2]
        rect = rect or PhotoRect.whole(w, h)
        cfg = self.config
        sel = self.segment(rgb) > cfg.mask_threshold
        if not rect.is_whole(w, h):
            rect.outside(sel)
        labels, blobs = self._blobs(sel)
        faces = self.detect_faces(rgb)

        lm = pose.landmarks if pose is not None else None
        if lm is not None:
            lm = np.asarray(lm, dtype=np.float64)
            faces = [f for f in faces if not self._on_torso(f, lm)]

        # main person: the blob holding most of the pose's visible landmarks, else the largest blob
        main = np.zeros((h, w), bool)
        if blobs:
            best = blobs[0]
            if lm is not None:
                xy = lm[:, :2]
                ok = (lm[:, 3] >= 0.5) & (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
                if ok.any():
                    hit = labels[xy[ok, 1].astype(int), xy[ok, 0].astype(int)]
                    counts = {b: int((hit == b).sum()) for b in blobs}
                    if max(counts.values()) > 0:
                        best = max(blobs, key=lambda b: (counts[b], -blobs.index(b)))
            main = labels == best
        if pose is not None and pose.person_mask is not None and pose.person_mask.shape == (h, w):
            main = main | (pose.person_mask > cfg.mask_threshold)

        num = max(len(faces), len(blobs))
        if num == 0 and pose is not None:
            num = 1  # the pose model found someone the mask and face detector missed
        box = _bbox(main)
        if box is None and lm is not None:
            xy = lm[:, :2]
            ok = rect.contains(xy)  # the photo only: a landmark in fit: pad's bands is out of frame
            if ok.any():
                p = xy[ok]
                box = (int(p[:, 0].min()), int(p[:, 1].min()), int(p[:, 0].max()) + 1, int(p[:, 1].max()) + 1)
        frac = 0.0 if box is None else (box[3] - box[1]) / h
        cut = self._cut_off(main, lm, rect) if box is not None else ()
        return PersonCheck(num_persons=int(num), person_box=box, person_height_frac=float(frac), cut_off=cut)

    @staticmethod
    def _on_torso(face: tuple[int, int, int, int, float], lm: np.ndarray) -> bool:
        cx, cy = (face[0] + face[2]) / 2, (face[1] + face[3]) / 2
        ls, rs = lm[_L_SHO, :2], lm[_R_SHO, :2]
        lh, rh = lm[_L_HIP, :2], lm[_R_HIP, :2]
        x0, x1 = sorted((rs[0], ls[0]))
        top = max(ls[1], rs[1])
        bottom = max(lh[1], rh[1])
        return bool(x0 < cx < x1 and top < cy < bottom)

    def _cut_off(self, main: np.ndarray, lm: np.ndarray | None, rect: PhotoRect) -> tuple[str, ...]:
        f = self.config.border_touch_frac
        w, h = rect.x1 - rect.x0, rect.y1 - rect.y0
        top_px = np.flatnonzero(main[rect.y0])
        touch = {
            "top": top_px.size >= max(2, f * w),
            "bottom": int(main[rect.y1 - 1].sum()) >= max(2, f * w),
            "left": int(main[:, rect.x0].sum()) >= max(2, f * h),
            "right": int(main[:, rect.x1 - 1].sum()) >= max(2, f * h),
        }
        cut = set()
        if lm is not None:
            xy = lm[:, :2]
            inside = rect.contains(xy)
            # head: nose or both eyes out of frame, or the silhouette leaves the top edge above the head
            head_out = (not inside[_NOSE]) or not (inside[_L_EYE] or inside[_R_EYE])
            if touch["top"] and not head_out:
                ears = xy[[_L_EAR, _R_EAR, _NOSE], 0]
                half = max(float(np.ptp(ears)), 1.0)
                lo, hi = ears.min() - half, ears.max() + half
                head_out = bool(((top_px >= lo) & (top_px <= hi)).sum() >= max(2, f * w))
            if head_out:
                cut.add("head")
            if not inside[list(_FEET)].all():
                cut.add("feet")
        else:
            if touch["top"]:
                cut.add("head")
            if touch["bottom"]:
                cut.add("feet")
        if touch["left"]:
            cut.add("left")
        if touch["right"]:
            cut.add("right")
        return tuple(s for s in CUT_OFF_SIDES if s in cut)


_DEFAULT: MediapipePerson | None = None


def _default() -> MediapipePerson:
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = MediapipePerson()
    return _DEFAULT


def person_mask(rgb: np.ndarray, pose: PoseResult | None = None) -> np.ndarray:
    """Boolean person mask with a per-process default :class:`MediapipePerson`."""
    return _default().person_mask(rgb, pose)


def check_person(rgb: np.ndarray, pose: PoseResult | None = None) -> PersonCheck:
    """:meth:`MediapipePerson.check_person` with a per-process default :class:`MediapipePerson`."""
    return _default().check_person(rgb, pose)
