"""Tests of the model-free approximate DensePose back-end (vitonprep.backends.densepose_approx).

Reference: the real DensePose render of VITON-HD 00006_00 (data/vitonhd-v3-reference/image-densepose), decoded
back to part indices with a nearest-colour inverse of the PARULA table (docs/architecture.md,
"DensePose rendering"). The
keypoints of 00006_00 come from the official OpenPose render of that id (openpose_img): each BODY_25 joint disc
is drawn in its BODY_25 colour x 0.84, so the repository's hand-written COCO-18 JSON only serves as a rough prior
to pick the right disc; joints without a disc in the render (knees, ankles, feet) are missing.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from vitonprep.backends import densepose_approx as dpa
from vitonprep.backends.densepose_approx import approximate_densepose_parts

DATA = Path(__file__).resolve().parents[1] / "data"
REF = DATA / "vitonhd-v3-reference"
OFFICIAL = DATA / "vitonhd-official"
OFFICIAL_IDS = ("00891_00", "03615_00", "07445_00")

# part index -> one of the 14 coarse groups (0 = background)
# torso, R hand, L hand, L foot, R foot, upper leg R, upper leg L, lower leg R, lower leg L,
# upper arm L, upper arm R, lower arm L, lower arm R, head
GROUP = np.array([0, 1, 1, 2, 3, 4, 5, 6, 7, 6, 7, 8, 9, 8, 9, 10, 11, 10, 11, 12, 13, 12, 13, 14, 14])
RIGHT_ARM = (3, 16, 18, 20, 22)
LEFT_ARM = (4, 15, 17, 19, 21)
HEAD = (23, 24)

# OpenPose BODY_25 render colours (RGB) of the joints.
B25_RGB = np.array([
    (255, 0, 85), (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (255, 0, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (255, 0, 170), (170, 0, 255), (255, 0, 255), (85, 0, 255), (0, 0, 255), (0, 0, 255),
    (0, 0, 255), (0, 255, 255), (0, 255, 255), (0, 255, 255),
])


def parula_table() -> np.ndarray:
    values = np.floor(np.arange(25) * 255.0 / 24).astype(np.uint8).reshape(-1, 1)
    table = cv2.applyColorMap(values, cv2.COLORMAP_PARULA)[:, 0, ::-1].astype(np.int32)
    table[0] = 0  # background is the black canvas
    return table


def decode_render(rgb: np.ndarray) -> np.ndarray:
    table = parula_table()
    d = ((rgb[:, :, None, :].astype(np.int32) - table[None, None]) ** 2).sum(-1)
    return d.argmin(-1).astype(np.uint8)


def pose_from_render(render_rgb: np.ndarray, prior25: np.ndarray) -> np.ndarray:
    """BODY_25 keypoints read off an OpenPose render: the disc of each prior joint nearest to the prior."""
    img = render_rgb.astype(np.int32)
    out = np.zeros((25, 3))
    for j in range(25):
        if prior25[j, 2] <= 0:
            continue
        colour = np.round(B25_RGB[j] * 0.84)
        mask = (np.abs(img - colour).max(-1) <= 12).astype(np.uint8)
        n, _, stats, centres = cv2.connectedComponentsWithStats(mask)
        cands = [centres[i] for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= 5]
        if cands:
            dist = [np.hypot(*(c - prior25[j, :2])) for c in cands]
            out[j, :2] = cands[int(np.argmin(dist))]
            out[j, 2] = 1.0
    return out


def coco18_to_body25(kp18: np.ndarray) -> np.ndarray:
    out = np.zeros((25, 3))
    out[0:8] = kp18[0:8]
    out[9:19] = kp18[8:18]
    if out[9, 2] > 0 and out[12, 2] > 0:
        out[8] = (out[9] + out[12]) / 2
    return out


def load_pose(path: Path) -> np.ndarray:
    return np.array(json.loads(path.read_text())["people"][0]["pose_keypoints_2d"], float).reshape(-1, 3)


@pytest.fixture(scope="module")
def ref_00006():
    parse = np.asarray(Image.open(REF / "image-parse-v3" / "00006_00.png"))
    real = decode_render(np.asarray(Image.open(REF / "image-densepose" / "00006_00.jpg").convert("RGB")))
    prior = coco18_to_body25(load_pose(REF / "openpose_json" / "00006_00_keypoints.json"))
    render = np.asarray(Image.open(REF / "openpose_img" / "00006_00_rendered.png").convert("RGB"))
    pose = pose_from_render(render, prior)
    return parse, pose, real, approximate_densepose_parts(parse, pose)


@pytest.fixture(scope="module")
def official():
    out = {}
    for pid in OFFICIAL_IDS:
        parse = np.asarray(Image.open(OFFICIAL / "image-parse" / f"{pid}.png"))
        pose = load_pose(OFFICIAL / "openpose-json" / f"{pid}_keypoints.json")
        out[pid] = (parse, pose, approximate_densepose_parts(parse, pose))
    return out


def test_module_constants():
    assert dpa.NAME == "densepose-approx-parse"
    assert dpa.APPROXIMATE is True


def test_reference_decoding_is_sane(ref_00006):
    """Guards the measurement itself: the decoded real render has the expected structure."""
    parse, pose, real, _ = ref_00006
    assert real.shape == parse.shape == (1024, 768)
    assert 0.30 < (real > 0).mean() < 0.45
    # a frontal person: torso index 2, head 23/24, both upper legs present
    counts = np.bincount(real.ravel(), minlength=25)
    assert counts[2] > 10 * counts[1]
    assert counts[23] > 10000 and counts[24] > 10000
    # the joints read off the official render: shoulders, elbows, wrists, hips, eyes found; knees absent
    assert pose[[1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 15, 16], 2].min() == 1
    assert pose[[10, 11, 13, 14], 2].max() == 0
    assert abs(pose[2, 0] - 260) < 5 and abs(pose[4, 1] - 852) < 5


def test_agreement_with_real_densepose_00006(ref_00006):
    _, _, real, approx = ref_00006
    a, b = approx > 0, real > 0
    fg_iou = (a & b).sum() / (a | b).sum()
    both = a & b
    group_acc = (GROUP[approx][both] == GROUP[real][both]).mean()
    exact_acc = (approx[both] == real[both]).mean()
    # measured: foreground IoU 0.9468, 14-group accuracy 0.9196, exact part-index accuracy 0.8788
    # (0.9202 / 0.8794 when every pixel is labelled on its own; the 2x2-block labelling costs 0.0006)
    # (keeping all hair as head drops the IoU to 0.934; the raw CIHP foreground scores 0.923)
    assert fg_iou >= 0.94, fg_iou
    assert group_acc >= 0.91, group_acc
    assert exact_acc >= 0.87, exact_acc


def test_per_group_recall_00006(ref_00006):
    """Each coarse group of the real render is recovered (recall over pixels that are foreground in both)."""
    _, _, real, approx = ref_00006
    both = (approx > 0) & (real > 0)
    g_real, g_approx = GROUP[real][both], GROUP[approx][both]
    # measured recall: torso 0.964, right hand 0.923, upper leg R 0.995, upper leg L 0.920, upper arm R 0.862,
    # lower arm R 0.930, head 0.985; upper arm L only 0.57 because OpenPose put that elbow (and wrist) ~50 px
    # (~250 px) too high on this image, which also leaves lower arm L at 0.28 (not asserted).
    minimum = {1: 0.94, 2: 0.9, 6: 0.97, 7: 0.9, 11: 0.83, 13: 0.9, 14: 0.97, 10: 0.5}
    for g, lo in minimum.items():
        sel = g_real == g
        assert sel.sum() > 9000, g
        assert (g_approx[sel] == g).mean() >= lo, g


def test_head_split_matches_real_side(ref_00006):
    """23 is the person's right half of the head (image left for a frontal person), as in the real render."""
    _, _, real, approx = ref_00006
    xs_real = {i: np.nonzero(real == i)[1].mean() for i in HEAD}
    xs_approx = {i: np.nonzero(approx == i)[1].mean() for i in HEAD}
    assert xs_real[23] < xs_real[24]
    assert xs_approx[23] < xs_approx[24]
    head = np.isin(real, HEAD) & np.isin(approx, HEAD)
    assert (real[head] == approx[head]).mean() >= 0.9


@pytest.mark.parametrize("pid", OFFICIAL_IDS)
def test_official_persons_layout(official, pid):
    parse, _, out = official[pid]
    assert out.shape == parse.shape and out.dtype == np.uint8
    assert out.max() <= 24
    fg = out > 0
    assert 0.2 < fg.mean() < 0.6
    # the approximate foreground lies inside the person
    assert not (fg & (parse == 0)).any()
    ys, xs = np.indices(out.shape)
    head, torso = np.isin(out, HEAD), out == 2
    assert head.sum() > 5000 and torso.sum() > 50000
    assert ys[head].mean() < ys[torso].mean()
    assert np.percentile(ys[head], 90) < np.percentile(ys[torso], 10) + 60
    # person's right arm on the image's left side, left arm on the right (frontal persons)
    torso_x = xs[torso].mean()
    right, left = np.isin(out, RIGHT_ARM), np.isin(out, LEFT_ARM)
    assert left.sum() > 5000
    assert xs[left].mean() > torso_x
    if pid != "00891_00":  # 00891_00's right arm is hidden behind the body (no CIHP label 15)
        assert right.sum() > 5000
    if right.any():
        assert xs[right].mean() < torso_x
    # CIHP arm skin is always an arm/hand part of the same side
    assert np.isin(out[(parse == 14) & fg], LEFT_ARM).all()
    assert np.isin(out[(parse == 15) & fg], RIGHT_ARM).all()
    # trousers / skirt become torso (above the hips) or upper/lower legs
    lower = np.isin(parse, (9, 12)) & fg
    assert np.isin(out[lower], (2, 9, 10, 13, 14)).all()
    assert np.isin(out[lower], (9, 10)).mean() > 0.5


def test_official_legs_left_right(official):
    """Upper leg right (9) is on the image left of upper leg left (10)."""
    for pid in OFFICIAL_IDS:
        _, _, out = official[pid]
        xs = np.indices(out.shape)[1]
        assert xs[out == 9].mean() < xs[out == 10].mean(), pid


def test_deterministic(official):
    parse, pose, out = official["03615_00"]
    assert np.array_equal(approximate_densepose_parts(parse.copy(), pose.copy()), out)


def test_empty_parse_gives_background():
    pose = load_pose(OFFICIAL / "openpose-json" / "00891_00_keypoints.json")
    out = approximate_densepose_parts(np.zeros((1024, 768), np.uint8), pose)
    assert out.shape == (1024, 768) and out.dtype == np.uint8 and not out.any()


def test_all_zero_keypoints_raise(official):
    parse = official["00891_00"][0]
    with pytest.raises(ValueError, match="no valid keypoint"):
        approximate_densepose_parts(parse, np.zeros((25, 3)))


def test_keypoints_without_torso_raise(official):
    parse = official["00891_00"][0]
    pose = np.zeros((25, 3))
    pose[0] = (350, 150, 0.9)  # nose only
    with pytest.raises(ValueError, match="place the torso"):
        approximate_densepose_parts(parse, pose)


@pytest.mark.parametrize(
    "parse, pose, match",
    [
        (np.zeros((4, 4, 3), np.uint8), np.ones((25, 3)), "2-D"),
        (np.zeros((4, 4), np.float32), np.ones((25, 3)), "integer"),
        (np.full((4, 4), 20, np.uint8), np.ones((25, 3)), "0..19"),
        (np.zeros((4, 4), np.uint8), np.ones((18, 3)), r"\(25, 3\)"),
        (np.zeros((4, 4), np.uint8), np.full((25, 3), np.nan), "NaN"),
    ],
)
def test_bad_inputs_raise(parse, pose, match):
    with pytest.raises(ValueError, match=match):
        approximate_densepose_parts(parse, pose)


def test_missing_limb_keypoints_still_label_everything(official):
    """With only neck, shoulders and hips the map keeps the same foreground and still finds arms and legs."""
    parse, pose, full = official["07445_00"]
    sparse = np.zeros_like(pose)
    sparse[[1, 2, 5, 8, 9, 12]] = pose[[1, 2, 5, 8, 9, 12]]
    out = approximate_densepose_parts(parse, sparse)
    assert np.array_equal(out > 0, full > 0)
    assert np.isin(out, LEFT_ARM).sum() > 5000 and np.isin(out, RIGHT_ARM).sum() > 5000
    assert (out == 9).sum() > 5000 and (out == 10).sum() > 5000
    assert not np.isin(out, (3, 4)).any()  # hands only beyond a detected wrist
