"""``check_sample``: every quality check over one decoded sample (the dict the shard decoders give)."""

from __future__ import annotations

import logging
from typing import Any, Callable

import numpy as np

from vitonprep.derive.body25 import OpenPoseKeypoints
from vitonprep.quality import masks, parse_pose, photo_checks, regions, skeleton
from vitonprep.quality.config import QualityConfig
from vitonprep.quality.garment import garment_face
from vitonprep.quality.geometry import Body
from vitonprep.quality.photo_models import PhotoModels
from vitonprep.quality.report import Outcome, QualityReport

__all__ = ["CHECKS", "check_sample"]

logger = logging.getLogger(__name__)

#: every check name, in report order
CHECKS = ("orientation", "left_right", "hip_shoulder_ratio", "bone_length", "crossing_limbs", "arm_chain",
          "leg_chain", "hand_labels", "limb_far", "face_label", "hair_far", "neck_at_top", "agn_face", "agn_hands",
          "agn_shoes", "agn_body", "gt_outside_agn", "hem_edge", "skin_in_garment", "cloth_mask_fit",
          "cloth_mask_symmetry", "garment_face", "two_people", "parse_person", "garment_colour")

_DEFAULT = QualityConfig()


def _body(decoded: dict[str, Any], cfg: QualityConfig) -> Body | None:
    pose, image = decoded.get("pose"), decoded.get("image")
    if pose is None or image is None:
        return None
    try:
        kp = OpenPoseKeypoints.from_json_dict(pose)
    except (ValueError, TypeError, AttributeError, KeyError):
        return None  # validate reports a pose.json that is not BODY_25; there is nothing to judge here
    h, w = image.shape[:2]
    return Body(kp, cfg.min_keypoint_confidence, w, h)


def check_sample(decoded: dict[str, Any], config: QualityConfig = _DEFAULT,
                 faces: PhotoModels | None = None) -> QualityReport:
    """Run the checks the sample's members allow (a missing member skips its checks, it is validate's job).
    ``faces`` holds the photo models to reuse across samples (a GarmentFaces is one); without it, and with
    ``config.detect_garment_faces`` or ``config.person_models``, one is made for this call.

    A check that raises on the sample's data (untrusted members of shapes no check foresaw) does not stop the
    others: it flags the sample under its own name with the reason ``could not be judged: <error>`` and no score,
    and logs a warning. Such a sample is flagged, never passed, so ``on_flag: drop`` and the trainer's
    ``skip_flagged`` leave it out like any other suspect sample.
    """
    own = faces is None and (config.detect_garment_faces or config.person_models)
    models = PhotoModels() if own else faces
    try:
        outcomes = _outcomes(decoded, config, models)
    finally:
        if own:
            models.close()
    report = QualityReport()
    for outcome in outcomes:
        if outcome is not None:
            report.add(outcome)
    return report


def _judged(checks: tuple[str, ...], fn: Callable[..., Any], *args: Any) -> list[Outcome | None]:
    """``fn(*args)`` as a list of outcomes; when it raises, a ``could not be judged`` flag for each of ``checks``
    (the checks ``fn`` answers) with a NaN score, which the report's JSON form leaves out."""
    try:
        result = fn(*args)
    except Exception as exc:  # noqa: BLE001 - any error of one check on odd data must not lose the others
        error = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        logger.warning("quality check %s could not judge the sample: %s", "/".join(checks), error)
        return [Outcome(check, float("nan"), f"could not be judged: {error}") for check in checks]
    return list(result) if isinstance(result, list) else [result]


def _outcomes(decoded: dict[str, Any], config: QualityConfig, models: PhotoModels | None) -> list[Outcome | None]:
    outcomes: list[Outcome | None] = []
    body = _body(decoded, config)
    parse = decoded.get("parse")
    if parse is not None and parse.ndim != 2:
        parse = None
    meta = decoded.get("meta") if isinstance(decoded.get("meta"), dict) else {}
    category = str(meta.get("category", "upper_body"))
    image = decoded.get("image")
    if body is not None:
        outcomes += _judged(("orientation",), skeleton.orientation, body, config)
        outcomes += _judged(("left_right",), skeleton.left_right, body, parse, config)
        outcomes += _judged(("hip_shoulder_ratio",), skeleton.hip_shoulder_ratio, body, config)
        outcomes += _judged(("bone_length",), skeleton.bone_length, body, config)
        outcomes += _judged(("crossing_limbs",), skeleton.crossing_limbs, body, config)
        if parse is not None:
            outcomes += _judged(("arm_chain", "leg_chain"), parse_pose.limb_chains, body, parse, config)
            outcomes += _judged(("hand_labels",), parse_pose.hand_labels, body, parse, config)
            outcomes += _judged(("limb_far",), parse_pose.limb_far, body, parse, config)
            outcomes += _judged(("face_label",), parse_pose.face_label, body, parse, config)
            outcomes += _judged(("hair_far",), parse_pose.hair_far, body, parse, config)
        agn = decoded.get("agn_mask")
        if agn is not None:
            outcomes += _judged(("agn_face", "agn_hands", "agn_shoes"), masks.agnostic_keeps, body, agn, category,
                                config)
    if parse is not None:
        outcomes += _judged(("neck_at_top",), parse_pose.neck_at_top, parse, config)
    agn, gt = decoded.get("agn_mask"), decoded.get("gt_cloth_warped_mask")
    if agn is not None and parse is not None and agn.shape == parse.shape:
        outcomes += _judged(("agn_body",), masks.agnostic_body, agn, parse, config)
    if agn is not None and gt is not None and agn.shape == gt.shape:
        outcomes += _judged(("gt_outside_agn",), masks.gt_inside_agn, gt, agn, config)
    if image is not None and parse is not None:
        outcomes += _judged(("hem_edge",), regions.hem_edge, image, parse, config)
        if body is not None:
            outcomes += _judged(("skin_in_garment",), regions.skin_in_garment, body, image, parse, category, config)
    cloth, cloth_mask = decoded.get("cloth"), decoded.get("cloth_mask")
    # what the checks compute from the garment photo alone, kept across the pairs that share the garment
    memo = models.garment_memo(cloth) if models is not None and cloth is not None else {}
    if cloth is not None and cloth_mask is not None and cloth.shape[:2] == cloth_mask.shape:
        outcomes += _judged(("cloth_mask_fit",), masks.cloth_mask_fit, cloth, cloth_mask, config, memo)
    # dresses are often cut asymmetrically (one shoulder, drapes, slits); tops and trousers rarely are
    if cloth_mask is not None and cloth_mask.ndim == 2 and category != "dresses":
        outcomes += _judged(("cloth_mask_symmetry",), masks.cloth_mask_symmetry, cloth_mask, config)
        if (meta.get("pair") == "paired" and image is not None and parse is not None
                and image.shape[:2] == parse.shape):
            outcomes += _judged(("garment_colour",), photo_checks.garment_colour, image, parse, cloth, cloth_mask,
                                category, config, memo)
    if cloth is not None and config.detect_garment_faces and models is not None:
        outcomes += _judged(("garment_face",), garment_face, models, np.asarray(cloth, np.uint8), config, memo)
    evidence = None
    if config.person_models and models is not None and image is not None:
        found = _judged(("parse_person", "two_people"), models.person_evidence, image)
        if isinstance(found[0], Outcome):  # the person models failed on this photo: both checks unjudged
            return outcomes + found
        evidence = found[0]
        if parse is not None:
            outcomes += _judged(("parse_person",), photo_checks.parse_person, parse, evidence, config)
    outcomes += _judged(("two_people",), photo_checks.two_people, meta, evidence, body, config)
    return outcomes
