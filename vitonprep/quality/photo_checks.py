"""Checks against what the photos show on their own: the parse's person against a person segmentation by another
model (``parse_person``), the number of persons in the person photo (``two_people``), and the worn garment's
colour against the garment photo on paired samples (``garment_colour``)."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from vitonprep.backends.person_mediapipe import MediapipePersonConfig
from vitonprep.quality.config import QualityConfig
from vitonprep.quality.geometry import Body
from vitonprep.quality.photo_models import PersonEvidence
from vitonprep.quality.report import Outcome

__all__ = ["parse_person", "two_people", "recorded_persons", "garment_colour", "GARMENT_LABELS"]

#: CIHP labels of the worn garment per category: upper clothes and coat; pants and skirt; dress
GARMENT_LABELS = {"upper_body": (5, 7), "lower_body": (9, 12), "dresses": (6,)}
#: a face counts as another person's when it is at least this share of the largest face's width: a face printed
#: small on a T-shirt or far in the background is not a second model
_COMPARABLE_FACE = 0.5
#: the person back-end's blob rule (a person blob covers 1 % of the image and a quarter of the largest)
_PERSON = MediapipePersonConfig()


def parse_person(parse: np.ndarray, evidence: PersonEvidence, cfg: QualityConfig) -> Outcome | None:
    """``parse_person``: IoU of the parse's person (non-background labels) with the selfie segmentation, at the
    segmentation's size."""
    mask = evidence.mask
    small = cv2.resize((parse != 0).view(np.uint8), (mask.shape[1], mask.shape[0]),
                       interpolation=cv2.INTER_AREA) > 0
    union = np.count_nonzero(small | mask)
    if union < 100:
        return None
    inter = np.count_nonzero(small & mask)
    iou = inter / union
    if iou >= cfg.min_parse_person_iou:
        return Outcome("parse_person", iou)
    extra = np.count_nonzero(small & ~mask) / max(1, np.count_nonzero(small))
    missed = np.count_nonzero(mask & ~small) / max(1, np.count_nonzero(mask))
    what = (f"{100 * extra:.0f} % of the parsed person is background to the person segmentation"
            if extra >= missed else
            f"{100 * missed:.0f} % of the segmented person is parsed as background (a missed limb, or another "
            "person)")
    return Outcome("parse_person", iou, f"the parse's person matches the photo's person segmentation poorly "
                                        f"(IoU {iou:.2f}): {what}")


def recorded_persons(meta: dict[str, Any]) -> int | None:
    """The build's own count (meta.json ``person_check.num_persons``: faces and separate silhouettes), None when
    the sample has no such record or it is not a non-negative integer (meta.json is untrusted)."""
    check = meta.get("person_check")
    n = check.get("num_persons") if isinstance(check, dict) else None
    return n if isinstance(n, int) and not isinstance(n, bool) and n >= 0 else None


def _counted_faces(faces: tuple[tuple[int, int, int, int, float], ...], body: Body | None) -> int:
    """Faces of comparable size, leaving out any on the main person's torso (a face printed on the garment)."""
    if not faces:
        return 0
    widest = max(f[2] - f[0] for f in faces)
    kept = [f for f in faces if f[2] - f[0] >= _COMPARABLE_FACE * widest]
    if body is not None and body.has("RShoulder", "LShoulder", "RHip", "LHip"):
        xs = sorted((body.xy("RShoulder")[0], body.xy("LShoulder")[0]))
        top = max(body.xy("RShoulder")[1], body.xy("LShoulder")[1])
        bottom = max(body.xy("RHip")[1], body.xy("LHip")[1])
        kept = [f for f in kept if not (xs[0] < (f[0] + f[2]) / 2 < xs[1] and top < (f[1] + f[3]) / 2 < bottom)]
    return len(kept)


def _large_blobs(mask: np.ndarray) -> int:
    """Separate silhouettes of the segmentation as large as the person back-end counts them (its defaults)."""
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
    if n <= 1:
        return 0
    areas = stats[1:, cv2.CC_STAT_AREA]
    limit = max(_PERSON.min_blob_image_frac * mask.size, _PERSON.min_blob_rel * areas.max())
    return int((areas >= limit).sum())


def two_people(meta: dict[str, Any], evidence: PersonEvidence | None, body: Body | None,
               cfg: QualityConfig) -> Outcome | None:
    """``two_people``: persons in the person photo - the build's record, else (converted samples, with
    ``person_models``) counted as the build's person check counts them: faces of comparable size off the main
    person's torso, or separate large silhouettes of the segmentation, whichever says more."""
    n = recorded_persons(meta)
    source = "the build's person check"
    if n is None:
        if evidence is None:
            return None
        n = max(_counted_faces(evidence.faces, body), _large_blobs(evidence.mask))
        source = "faces and silhouettes on the photo"
    if n <= cfg.max_persons:
        return Outcome("two_people", float(n))
    return Outcome("two_people", float(n), f"{n} persons in the person photo ({source}): the maps describe one of "
                                           "them and the model learns the others as background")


#: Lab histogram bins (OpenCV's 8-bit Lab: L*255/100, a+128, b+128): 6 lightness bins over the whole range, 8 x 8
#: chroma bins over a*, b* in [-64, 64) (16 units each, clothing colours lie within)
_BINS, _RANGES = [6, 8, 8], [0, 256, 64, 192, 64, 192]
#: garment colours are compared at this width: colour needs no detail, and the photo's weave or print averages out
_COLOUR_WIDTH = 192


def _lab_hist(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray | None:
    """Normalised Lab histogram of the masked pixels, spread to the neighbouring bins (a lighting change moves
    a colour by about a bin; spreading it keeps such a move from counting as a different colour)."""
    h, w = mask.shape
    s = min(1.0, _COLOUR_WIDTH / w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    # eroded by a few pixels: the region's edge mixes in the skin or background beside it
    m = cv2.erode(cv2.resize(mask.view(np.uint8), size, interpolation=cv2.INTER_NEAREST), np.ones((3, 3), np.uint8))
    if np.count_nonzero(m) < 50:
        return None
    lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB)
    hist = cv2.calcHist([lab], [0, 1, 2], m, _BINS, _RANGES)
    spread = hist.copy()
    for axis in range(3):
        lo, hi = [slice(None)] * 3, [slice(None)] * 3
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        spread[tuple(hi)] += hist[tuple(lo)]
        spread[tuple(lo)] += hist[tuple(hi)]
    total = float(spread.sum())
    return spread / total if total > 0 else None


def garment_colour(image: np.ndarray, parse: np.ndarray, cloth: np.ndarray, cloth_mask: np.ndarray,
                   category: str, cfg: QualityConfig, memo: dict[str, Any] | None = None) -> Outcome | None:
    """``garment_colour`` (paired samples): 1 - the intersection of the Lab histograms of the parse's garment
    region in the person photo and of the garment in the garment photo (0 = same colours, 1 = none shared).
    ``memo``: the garment photo's memo, where its histogram is kept."""
    labels = GARMENT_LABELS.get(category)
    if labels is None:
        return None
    memo = {} if memo is None else memo
    if "colours" not in memo:
        memo["colours"] = _lab_hist(cloth, cloth_mask.astype(bool))
    shown = memo["colours"]
    worn = _lab_hist(image, np.isin(parse, labels))
    if worn is None or shown is None:
        return None
    distance = float(1.0 - np.minimum(worn, shown).sum())
    if distance <= cfg.max_garment_colour:
        return Outcome("garment_colour", distance)
    return Outcome("garment_colour", distance, f"the parsed {category} garment and the garment photo share "
                                               f"{100 * (1 - distance):.0f} % of their colours: something else "
                                               "(a bag, skin, another garment) is parsed as the garment, or the "
                                               "paired garment photo is not the worn one")
