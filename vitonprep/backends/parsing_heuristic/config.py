"""Configuration and label ids of the heuristic CIHP parser."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CATEGORIES", "OUTPUT_LABELS", "HeuristicParsingConfig"]

#: Garment categories accepted by the parser (DressCode / VITON-HD names).
CATEGORIES: tuple[str, ...] = ("upper_body", "lower_body", "dresses")

# CIHP ids written by this back-end.
BG, HAIR, UPPER, DRESS, PANTS, NECK, SKIRT, FACE = 0, 2, 5, 6, 9, 10, 12, 13
L_ARM, R_ARM, L_LEG, R_LEG, L_SHOE, R_SHOE = 14, 15, 16, 17, 18, 19

#: Every CIHP id the parser can output.
OUTPUT_LABELS: tuple[int, ...] = (BG, HAIR, UPPER, DRESS, PANTS, NECK, SKIRT, FACE,
                                  L_ARM, R_ARM, L_LEG, R_LEG, L_SHOE, R_SHOE)

# Colour classes competing inside the person mask (indices of the score stack).
C_SKIN, C_HAIR, C_UPPER, C_LOWER, C_SHOE = range(5)
NCLS = 5

NEG = -30.0  # "impossible" log score (finite so that score maps can be blurred)


@dataclass(frozen=True)
class HeuristicParsingConfig:
    """Tunable constants of the parser (lengths in units given per field).

    ``mask_threshold``: the BlazePose person mask is thresholded here.
    ``work_height``: the parse is computed at this height (aspect kept) and resized back.
    ``forehead_lift``: the brows are lifted by this fraction of the brow-chin distance to close the face
    polygon at the (guessed) hairline; the band between brows and lifted brows is face where skin coloured.
    ``arm_radius``: half thickness of an arm, fraction of the shoulder width (skin farther from the arm chain
    than a few radii is not arm).
    ``waist``: position of the upper/lower garment prior boundary along the neck->mid-hip axis (1 = hips).
    ``prior_slope``: log-score penalty per torso length beyond the waist boundary for the wrong garment.
    ``min_part_frac``: connected pieces of a label smaller than this fraction of the person area are removed.
    ``hand_bonus``: log-score added to skin inside the (slightly dilated) hull of detected hand keypoints.
    ``hand_scale``: distances to the hand skeleton count this many times more than distances to the arm
    chain when skin is assigned to an arm (hands are thinner than arms).
    ``skin_seed_md``: squared Mahalanobis distance (a, b) under which a pixel is "skin coloured" for the
    seeds and the skin lightness histogram.
    ``leg_radius_ratio``: a leg is this many times thicker than an arm (``arm_radius``).
    ``leg_above_crotch_penalty``: distance penalty per torso length above the crotch level (``t = 1.2``) for
    leg skin.
    ``skin_torso_penalty``: log-score taken from skin in the middle of the torso (t 0.3-1.1, s < 0.35),
    where skin shows only through a neckline.
    ``skin_far_penalty``: log-score taken from skin per normalised distance unit beyond 1.5 from every
    skin-showing part (capped at 3 units).
    ``covered_leg_penalty``: distance units added to the legs where the lower garment continues below.
    ``score_blur``: box-blur radius of the score maps, fraction of the working height.
    """

    mask_threshold: float = 0.5
    work_height: int = 384
    forehead_lift: float = 0.5
    arm_radius: float = 0.14
    waist: float = 0.95
    prior_slope: float = 10.0
    min_part_frac: float = 0.002
    hand_bonus: float = 2.0
    hand_scale: float = 2.0
    skin_seed_md: float = 6.0
    leg_radius_ratio: float = 1.3
    leg_above_crotch_penalty: float = 20.0
    skin_torso_penalty: float = 1.0
    skin_far_penalty: float = 1.5
    covered_leg_penalty: float = 10.0
    score_blur: float = 0.012
