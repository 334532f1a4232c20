"""The garment-region checks against the person photo (``hem_edge``, ``skin_in_garment``) and the agnostic's
wrist disc (``agn_hands`` for upper_body), on real bundled samples: data/samples built with the default pipeline
(5 upper_body samples, each a top over trousers or a skirt) and data/vitonhd-official converted."""

from __future__ import annotations

import numpy as np
import pytest

from vitonprep.derive.body25 import OpenPoseKeypoints
from vitonprep.quality import QualityConfig, check_sample
from vitonprep.quality.geometry import body_from_pose
from vitonprep.quality.regions import hem_edge, skin_in_garment

_CONFIG = QualityConfig(detect_garment_faces=False)


def _top_split(parse: np.ndarray, keep: float = 2 / 3) -> np.ndarray:
    """The parse with the top garment's rows below ``keep`` of its height relabelled as pants: the boundary the
    parser draws on a same-colour outfit (a white top's lower third called white shorts)."""
    out = parse.copy()
    top = np.isin(parse, (5, 6, 7))
    ys = np.nonzero(top.any(1))[0]
    top[: ys[0] + int(keep * (ys[-1] - ys[0]))] = False
    out[top] = 9
    return out


def test_sound_hems_lie_on_photo_edges(built, official):
    """Every bundled top ends at a visible hem: the parse's top/bottom boundary is scored and passes."""
    for d in built + official:
        out = hem_edge(d["image"], d["parse"], _CONFIG)
        assert out is not None and out.reason is None, (d["__key__"], out)


def test_top_split_through_plain_fabric(built):
    """The top's lower third parsed as pants: the new boundary runs across the top's own fabric, on no edge."""
    for d in built:
        flags = {f.check: f.reason for f in check_sample({**d, "parse": _top_split(d["parse"])}, _CONFIG).flags}
        assert "hem_edge" in flags and "plain fabric" in flags["hem_edge"], (d["__key__"], flags)


def test_no_boundary_no_score(built):
    """A parse without trousers or skirt (a dress, a person-only crop above the waist) gives hem_edge no score."""
    d = built[0]
    parse = d["parse"].copy()
    parse[np.isin(parse, (9, 12))] = 0
    assert hem_edge(d["image"], parse, _CONFIG) is None
    assert "hem_edge" not in check_sample({**d, "parse": parse}, _CONFIG).scores


def test_hem_edge_threshold_from_the_config(built):
    d = built[0]
    score = hem_edge(d["image"], d["parse"], _CONFIG).score
    assert hem_edge(d["image"], d["parse"], QualityConfig(min_hem_edge=score + 0.01)).reason is not None


def _hands_at_wrists(d: dict) -> dict:
    """Both hands' keypoints pulled onto their wrist (a hand on the hip or in a pocket: the fingers stay within
    HR-VITON's wrist disc)."""
    kp = OpenPoseKeypoints.from_json_dict(d["pose"])
    hands = {}
    for name, wrist in (("hand_right", 4), ("hand_left", 7)):
        h = getattr(kp, name).copy()
        h[:, :2] = kp.pose[wrist, :2] + 0.3 * (h[:, :2] - kp.pose[wrist, :2])
        h[:, 2] = np.where(kp.pose[wrist, 2] > 0.1, 0.9, 0.0)
        hands[name] = h
    return {**d, "pose": OpenPoseKeypoints(kp.pose, kp.face, hands["hand_left"], hands["hand_right"]).to_json_dict()}


def test_upper_body_wrist_disc_is_not_a_greyed_hand(built):
    """HR-VITON's agnostic keeps the disc at the wrist grey by design: hands inside it do not flag upper_body, but
    the same hands flag when the agnostic follows IDM-VTON's recipe (lower_body) and covers them."""
    for d in built:
        agn = d["agn_mask"].copy()
        kp = OpenPoseKeypoints.from_json_dict(d["pose"])
        for wrist in (4, 7):
            x, y = kp.pose[wrist, :2]
            yy, xx = np.ogrid[: agn.shape[0], : agn.shape[1]]
            agn |= (yy - y) ** 2 + (xx - x) ** 2 <= 40 ** 2  # the wrist disc, greyed
        near = {**_hands_at_wrists(d), "agn_mask": agn}
        assert "agn_hands" not in {f.check for f in check_sample(near, _CONFIG).flags}, d["__key__"]
        lower = {**near, "meta": {**d["meta"], "category": "lower_body"}}
        assert "agn_hands" in {f.check for f in check_sample(lower, _CONFIG).flags}, d["__key__"]


def test_upper_body_hand_greyed_beyond_the_wrist_disc(built):
    """A whole hand greyed (the agnostic over the fingers, far past the wrist disc) still flags upper_body."""
    for d in built:
        flags = {f.check for f in check_sample({**d, "agn_mask": np.ones_like(d["agn_mask"])}, _CONFIG).flags}
        assert "agn_hands" in flags, d["__key__"]


def _body(d: dict):
    h, w = d["image"].shape[:2]
    return body_from_pose(d["pose"], _CONFIG.min_keypoint_confidence, w, h)


def test_sound_garments_are_not_skin(built, official):
    """The bundled garments (white, grey, navy, patterned tops on light and dark skin) share little of the
    face's colour."""
    scored = 0
    for d in built + official:
        out = skin_in_garment(_body(d), d["image"], d["parse"], "upper_body", _CONFIG)
        if out is not None:
            scored += 1
            assert out.reason is None, (d["__key__"], out)
    assert scored >= 6  # the face keypoints were found on most samples


def test_bare_arms_parsed_as_the_top(built):
    """Bare arms and neck skin relabelled as upper clothes (a bare arm joining the top), judged on the samples
    whose bare arm skin is at least a fifth of the top's region (short sleeves or none). The built samples only:
    the official parses label long sleeves as arms (07445_00), so their arm labels are not all skin."""
    judged = 0
    for d in built:
        parse = d["parse"]
        skin, top = np.isin(parse, (10, 14, 15)), np.isin(parse, (5, 7))
        if np.count_nonzero(skin) < 0.25 * np.count_nonzero(top):
            continue  # long sleeves: too little bare arm to make a fifth of the top
        judged += 1
        relabelled = np.where(skin, 5, parse).astype(parse.dtype)
        flags = {f.check: f.reason for f in check_sample({**d, "parse": relabelled}, _CONFIG).flags}
        assert "skin_in_garment" in flags and "bare skin" in flags["skin_in_garment"], (d["__key__"], flags)
    assert judged >= 3


def test_no_face_no_skin_model(built):
    """Without the face keypoints (a head cut by the frame) there is no skin colour to compare: no score."""
    d = built[0]
    kp = OpenPoseKeypoints.from_json_dict(d["pose"])
    face = kp.face.copy()
    face[:, 2] = 0.0
    d = {**d, "pose": OpenPoseKeypoints(kp.pose, face, kp.hand_left, kp.hand_right).to_json_dict()}
    assert skin_in_garment(_body(d), d["image"], d["parse"], "upper_body", _CONFIG) is None


@pytest.mark.parametrize("bad", [float("nan"), 1e30, -1e30, -5.0])
def test_untrusted_face_keypoints_give_no_skin_model(built, bad):
    """pose.json is untrusted: face points that are not finite or lie off the frame (every third one, or all)
    give skin_in_garment no score, never a crash or a colour model from the wrong pixels."""
    d = built[0]
    kp = OpenPoseKeypoints.from_json_dict(d["pose"])
    for every in (1, 3):
        face = kp.face.copy()
        face[::every, :2] = bad
        face[:, 2] = 0.9
        bent = {**d, "pose": OpenPoseKeypoints(kp.pose, face, kp.hand_left, kp.hand_right).to_json_dict()}
        assert skin_in_garment(_body(bent), d["image"], d["parse"], "upper_body", _CONFIG) is None
        assert "skin_in_garment" not in check_sample(bent, _CONFIG).scores
