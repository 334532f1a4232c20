"""Which QualityConfig field bounds each check's score and which way, and how far a score is from failing.

``margin`` puts every check on one scale: negative when the check flags, positive when it passes, measured as the
distance to the threshold relative to the threshold's size. ``worst_margin`` of a sample's meta.json ``quality``
is the check closest to (or furthest beyond) failing; inspect sorts by it to show the worst samples first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from vitonprep.quality.config import QualityConfig
from vitonprep.validate.quality_field import finite_number

__all__ = ["Threshold", "THRESHOLDS", "margin", "worst_margin"]


@dataclass(frozen=True)
class Threshold:
    """``field`` of QualityConfig bounds the score from below (``min``: a lower score flags) or above (``max``: a
    higher score flags); ``inclusive`` means a score equal to the bound already flags."""

    field: str
    direction: Literal["min", "max"]
    inclusive: bool = False
    #: the distance that counts as 1.0 when the bound itself is 0 (a count of crossing limbs)
    unit: float = 1.0
    #: a count's step: its margin is measured from half a step past the bound, between the last count that
    #: passes and the first that flags (else every sample on the bound, 0 crossings of 0 allowed, would rank as
    #: close to failing as a sample one step from it)
    step: float = 0.0


#: every check of ``vitonprep.quality.sample.CHECKS`` (tests/test_quality_thresholds.py holds them equal)
THRESHOLDS: dict[str, Threshold] = {
    "orientation": Threshold("min_upright_cosine", "min"),
    "left_right": Threshold("min_left_right_agreement", "min"),
    "hip_shoulder_ratio": Threshold("min_hip_shoulder_ratio", "min"),
    "bone_length": Threshold("max_bone_ratio", "max"),
    "crossing_limbs": Threshold("max_crossing_limbs", "max", step=1.0),
    "arm_chain": Threshold("min_chain_agreement", "min"),
    "leg_chain": Threshold("min_chain_agreement", "min"),
    "hand_labels": Threshold("min_hand_agreement", "min"),
    "limb_far": Threshold("max_limb_far", "max"),
    "face_label": Threshold("min_face_label", "min"),
    "hair_far": Threshold("max_hair_far", "max"),
    "neck_at_top": Threshold("max_neck_at_top", "max"),
    "agn_face": Threshold("max_agn_face", "max"),
    "agn_hands": Threshold("max_agn_hands", "max"),
    "agn_shoes": Threshold("max_agn_shoes", "max"),
    "agn_body": Threshold("max_agn_body", "max"),
    "gt_outside_agn": Threshold("max_gt_outside_agn", "max"),
    "hem_edge": Threshold("min_hem_edge", "min"),
    "skin_in_garment": Threshold("max_skin_in_garment", "max"),
    "cloth_mask_fit": Threshold("min_cloth_mask_fit", "min"),
    "cloth_mask_symmetry": Threshold("min_cloth_mask_symmetry", "min"),
    "garment_face": Threshold("max_garment_face", "max", inclusive=True),
    "two_people": Threshold("max_persons", "max", step=1.0),
    "parse_person": Threshold("min_parse_person_iou", "min"),
    "garment_colour": Threshold("max_garment_colour", "max"),
}

#: a score exactly on an inclusive bound flags; its margin must still be negative
_ON_THE_BOUND = -1e-9


def margin(check: str, score: float, config: QualityConfig) -> float:
    """(score - bound) / |bound| for a ``min`` check, (bound - score) / |bound| for a ``max`` one: negative exactly
    when ``check_sample`` flags that score under ``config``. Raises KeyError for an unknown check."""
    t = THRESHOLDS[check]
    bound = float(getattr(config, t.field))
    scale = abs(bound) if bound != 0 else t.unit
    if t.direction == "min":
        bound -= t.step / 2
    else:
        bound += t.step / 2
    diff = score - bound if t.direction == "min" else bound - score
    if t.inclusive and diff == 0:
        return _ON_THE_BOUND
    return diff / scale


def worst_margin(report: Any, config: QualityConfig) -> float | None:
    """The smallest margin over the scores of a meta.json ``quality`` value, or None when it holds no usable score
    (an unchecked sample). The value is untrusted: anything that is not a known check with a finite number is
    ignored, never an error."""
    scores = report.get("scores") if isinstance(report, dict) else None
    if not isinstance(scores, dict):
        return None
    margins = [margin(name, float(value), config) for name, value in scores.items()
               if name in THRESHOLDS and finite_number(value)]
    return min(margins, default=None)
