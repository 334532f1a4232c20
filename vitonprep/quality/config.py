"""Thresholds of the quality checks: one frozen dataclass, read from the ``quality`` section of a pipeline YAML.

Every default comes from a fact about people or photos, not from the bundled samples (docstring of each field).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from vitonprep.errors import ConfigError

__all__ = ["QualityConfig", "quality_config_from_mapping", "load_quality_config"]


@dataclass(frozen=True)
class QualityConfig:
    """Thresholds (``quality:`` in a pipeline YAML; ``on_flag`` there is the build's policy and is ignored here).

    Scores are named like the checks; each field says which way its score fails.
    """

    #: a keypoint counts when its confidence exceeds this (OpenPose draws joints above 0.05; 0.1 keeps the
    #: joints its own renderer shows and drops BlazePose's guessed, invisible ones)
    min_keypoint_confidence: float = 0.1
    #: ``orientation`` (cosine between neck->mid-hip and image-down) below cos(45 deg) flags: try-on photos show
    #: standing people, so a torso tilted past 45 deg is a photo rotated by 90/180 deg or a wrong skeleton
    min_upright_cosine: float = math.cos(math.radians(45))
    #: ``left_right`` (share of left/right evidences - hips, eyes, face landmarks, hands, arm labels, a visible
    #: face - that agree with the shoulders) below 0.75 flags: one noisy evidence of the usual 6-8 passes, a
    #: mirrored joint set contradicts several at once
    min_left_right_agreement: float = 0.75
    #: left/right spreads under this fraction of the torso length are too small to give an order (a turned body)
    min_lateral_spread: float = 0.05
    #: ``hip_shoulder_ratio`` (hip-joint width / shoulder width) below 0.3 flags: the hip joints are about 0.6 of
    #: the shoulder width in adults (about 25 of 39 cm) and turning shrinks both alike, so 0.3 is half the
    #: narrowest real body (hips 21 px under shoulders 190 px apart is 0.11)
    min_hip_shoulder_ratio: float = 0.3
    #: ``bone_length`` (longest bone / its adult length as a fraction of the neck->mid-hip torso: upper arm 0.65,
    #: forearm 0.51, thigh 0.85, shin 0.85, from Drillis & Contini's segment table) above 2 flags: foreshortening
    #: only shortens bones, a bone twice its anatomical length is a joint on something else
    max_bone_ratio: float = 2.0
    #: ``crossing_limbs`` (how many of the thigh pair and the upper-arm pair cross) above 0 flags: upper arms hang
    #: beside the torso and thighs cross only when the hips are swapped (crossed ankles leave the thighs apart)
    max_crossing_limbs: int = 0
    #: ``arm_chain`` / ``leg_chain`` (share of the parse along shoulder->elbow->wrist / hip->knee->ankle in a class
    #: that may lie there: arm, glove, garment, neck skin, hair, background for arms; leg, sock, shoe, any garment,
    #: background for legs) below 0.7 flags: "mostly" with room for a joint a few pixels off a thin limb
    min_chain_agreement: float = 0.7
    #: ``hand_labels`` (share of the hand keypoints on an arm/glove label, background not counted) below 0.5 flags:
    #: CIHP labels hands as arms, so a hand on garment or pants means the arm was labelled with it
    min_hand_agreement: float = 0.5
    #: ``limb_far`` (share of arm/leg labelled pixels farther than ``limb_far_distance`` torso lengths from their
    #: chain of joints) above 0.15 flags: a limb is at most ~0.15 torso lengths thick, so pixels 0.4 away are not it
    max_limb_far: float = 0.15
    limb_far_distance: float = 0.4
    #: ``face_label`` (share of face/sunglasses labels within one eye distance of the nose) below 0.3 flags when
    #: the nose and an eye are in frame: that disk is the middle of the face
    min_face_label: float = 0.3
    #: ``hair_far`` (share of hair pixels in regions that do not reach the head: nose, eyes, ears grown by 1.5
    #: head widths) above 0.25 flags: hair grows from the head, long hair stays connected to it
    max_hair_far: float = 0.25
    #: ``neck_at_top`` (share of the person on the frame's top rows parsed as neck skin) above 0.25 flags: a neck
    #: under a head in frame never reaches the top edge; a quarter leaves room for hair and background beside it
    max_neck_at_top: float = 0.25
    #: ``agn_face`` / ``agn_hands`` / ``agn_shoes`` (share of inner face / hand / foot keypoints inside agn_mask)
    #: above 0.25 / 0.5 / 0.5 flags: the agnostic keeps face and hands, and for lower_body/dresses the shoes
    #: For upper_body (HR-VITON's recipe) the hand keypoints within 4 r + 2 px of their wrist are not counted,
    #: r = int(shoulder width / 16) + 1: HR-VITON's get_agnostic (vitonprep/derive/agnostic.py, step 6) keeps the
    #: disc of radius 4 r at the wrist grey on purpose, and the official VITON-HD agnostic images grey it too (a
    #: hand on the hip or in a pocket lies in it). lower_body/dresses (IDM-VTON's recipe) count every hand point.
    max_agn_face: float = 0.25
    max_agn_hands: float = 0.5
    max_agn_shoes: float = 0.5
    #: ``agn_body`` (agn_mask area / person area, person = non-background parse) above 0.9 flags: a garment region
    #: never covers the whole person (head, hands and feet stay)
    max_agn_body: float = 0.9
    #: ``gt_outside_agn`` (share of gt_cloth_warped_mask outside agn_mask in regions at least 9 px wide) above
    #: 0.005 flags: the worn garment must lie in the region the model repaints; half a percent of a garment (about
    #: a palm) stays visible in agn.jpg as the old garment, thinner edge slivers are drawing differences
    max_gt_outside_agn: float = 0.005
    #: ``hem_edge`` (share of the parse's boundary between the top garment - upper clothes, dress, coat - and the
    #: trousers/skirt that lies within 5 px of an edge of the person photo) below 0.5 flags: a top ends at a hem,
    #: which a photo shows as a line along its length (a colour change, or on a same-colour outfit the hem's fold
    #: and shadow); a boundary with most of its length on no edge cuts through one fabric (a top's lower part
    #: parsed as trousers, a dress split in two). Blind to patterned fabric, which has edges everywhere
    min_hem_edge: float = 0.5
    #: ``skin_in_garment`` (share of the parse's garment region - the category's garment labels - whose YCrCb
    #: colour lies within the 99 % ellipsoid of the face's skin, sampled inside the face keypoints' jaw line)
    #: above 0.2 flags: one whole bare arm parsed as a top is a fifth of the region (rule of nines: an arm's front
    #: is 4.5 % of the body, the front trunk 18 %) and a crop top's bare midriff a third of the trunk; the face's
    #: colour model is taken within the 99 % ellipsoid of its own spread, so a sound parse's edges and shadows
    #: keep a few percent. A garment of the wearer's own skin tone and lightness flags too
    max_skin_in_garment: float = 0.2
    #: ``cloth_mask_fit`` (share of the garment photo's own foreground - pixels unlike the border colour and edges -
    #: inside the dilated cloth mask) below 0.8 flags: a studio garment photo is the garment on a plain
    #: background, so foreground left outside the mask is garment the mask missed (a mask that covers a print)
    min_cloth_mask_fit: float = 0.8
    #: ``cloth_mask_symmetry`` (IoU of the cloth mask with its mirror image about an axis near the canvas centre)
    #: below 0.8 flags: a flat, centred garment shot from the front is symmetric up to drape and angle (0.87-0.99
    #: on the bundled garments), and a region of share s missing on one side gives 1 - 2s on a symmetric outline,
    #: so a lost sleeve (about a tenth of a T-shirt) falls to 0.8 or below. Not judged for dresses, often cut
    #: asymmetrically (one shoulder, drapes); an asymmetric top or a garment off the centre by more than 5 % of
    #: the width flags
    min_cloth_mask_symmetry: float = 0.8
    #: ``garment_face`` (best face-detector score on the garment photo, among faces at least half on the selfie
    #: segmentation's person) at or above 0.5 flags: mediapipe's own default detection threshold; an in-shop
    #: garment photo holds no person (a face printed on a T-shirt lies on no person silhouette)
    max_garment_face: float = 0.5
    #: run the face detector on the garment photo (mediapipe, about 4 ms CPU a garment; cached by the garment
    #: photo's content, so a garment worn in several pairs costs it once)
    detect_garment_faces: bool = True
    #: ``two_people`` (persons in the person photo: the build's person check, else - with ``person_models`` - the
    #: faces of comparable size on the photo) above 1 flags: the maps describe one person
    max_persons: int = 1
    #: ``parse_person`` (IoU of the parse's person with mediapipe's selfie segmentation) below 0.85 flags: the two
    #: agree at 0.95 on the official VITON-HD parses (vitonprep/backends/person_mediapipe.py) and one arm is about
    #: 9 % of a body's outline (the rule of nines), so a parse missing an arm, labelling as much background, or
    #: leaving out a second person falls under 0.85
    min_parse_person_iou: float = 0.85
    #: ``garment_colour`` (paired samples: 1 - the shared share of the Lab colour histograms of the parsed garment
    #: and the garment photo, each colour spread to its neighbouring bins) above 0.6 flags: the same garment under
    #: other light shares most of its colours, a bag or another garment shares few
    max_garment_colour: float = 0.6
    #: run the selfie segmentation and the face detector on the person photo (``parse_person``, and
    #: ``two_people`` on samples without the build's count): off by default, it costs about as much as every
    #: other check together (bench/bench_quality.py)
    person_models: bool = False


def quality_config_from_mapping(values: Mapping[str, Any], where: str = "quality") -> QualityConfig:
    """A QualityConfig from a mapping; unknown keys and wrong types are ConfigErrors naming ``where``."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(QualityConfig)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key in ("on_flag", "enabled"):  # the build's policy (keep/drop, stage on/off), not thresholds
            continue
        if key not in fields:
            raise ConfigError(f"{where}.{key}: unknown setting (known: {', '.join(sorted(fields))})")
        default = getattr(QualityConfig, key)
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and isinstance(default, float):
            try:  # an int too large for a float (400 digits in YAML) raises OverflowError; NaN/inf judge nothing
                value = float(value)
                ok = math.isfinite(value)
            except OverflowError:
                ok = False
        if not ok:
            finite = " (finite)" if isinstance(default, float) else ""
            raise ConfigError(f"{where}.{key}: expected {type(default).__name__}{finite}, got {_shown(value)}")
        kwargs[key] = value
    return QualityConfig(**kwargs)


def _shown(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def load_quality_config(path: str | Path) -> QualityConfig:
    """Read the ``quality:`` section of a pipeline YAML (or a YAML holding only the thresholds)."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the quality config ({exc})") from exc
    if isinstance(data, Mapping) and "quality" in data:
        return quality_config_from_mapping(data["quality"] or {}, f"{path}: quality")
    return quality_config_from_mapping(data, str(path))
