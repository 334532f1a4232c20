"""vitonprep.derive.body25 (schema, COCO-18/BODY_25), pose_render (render), pose_from_render (render inversion)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vitonprep.derive import body25 as b25
from vitonprep.derive import pose_from_render as pfr
from vitonprep.derive import pose_render as pr

DATA = Path(__file__).parents[1] / "data"
OFFICIAL = DATA / "vitonhd-official"
IDS = ("00891_00", "03615_00", "07445_00")


def _json(id_: str) -> dict:
    return json.loads((OFFICIAL / "openpose-json" / f"{id_}_keypoints.json").read_text())


def _render(id_: str) -> np.ndarray:
    return np.array(Image.open(OFFICIAL / "openpose-img" / f"{id_}_rendered.png").convert("RGB"))


@pytest.mark.parametrize("id_", IDS)
def test_official_json_round_trip(id_):
    d = _json(id_)
    kp = b25.OpenPoseKeypoints.from_json_dict(d)
    out = kp.to_json_dict()
    person = out["people"][0]
    assert out["version"] == 1.3
    assert list(person) == ["person_id", "pose_keypoints_2d", "face_keypoints_2d",
                            "hand_left_keypoints_2d", "hand_right_keypoints_2d",
                            "pose_keypoints_3d", "face_keypoints_3d",
                            "hand_left_keypoints_3d", "hand_right_keypoints_3d"]
    assert person["person_id"] == [-1]
    for key, n in (("pose_keypoints_2d", 75), ("face_keypoints_2d", 210),
                   ("hand_left_keypoints_2d", 63), ("hand_right_keypoints_2d", 63)):
        assert len(person[key]) == n
        assert person[key] == d["people"][0][key], key          # numerically identical
    for key in ("pose_keypoints_3d", "face_keypoints_3d", "hand_left_keypoints_3d",
                "hand_right_keypoints_3d"):
        assert person[key] == []
    # and it survives real JSON text
    again = b25.OpenPoseKeypoints.from_json_dict(json.loads(json.dumps(out)))
    assert np.array_equal(again.pose, kp.pose) and np.array_equal(again.face, kp.face)


def test_from_json_dict_errors_and_zero_fill():
    with pytest.raises(ValueError, match="no people"):
        b25.OpenPoseKeypoints.from_json_dict({"version": 1.3, "people": []})
    with pytest.raises(ValueError, match="expected 75"):
        b25.OpenPoseKeypoints.from_json_dict({"people": [{"pose_keypoints_2d": [0.0] * 60}]})
    with pytest.raises(ValueError, match="face_keypoints_2d"):
        b25.OpenPoseKeypoints.from_json_dict(
            {"people": [{"pose_keypoints_2d": [1.0] * 75, "face_keypoints_2d": [1.0] * 9}]})
    kp = b25.OpenPoseKeypoints.from_json_dict({"people": [{"pose_keypoints_2d": [1.0] * 75}]})
    assert kp.face.shape == (70, 3) and not kp.face.any() and not kp.hand_left.any()
    with pytest.raises(ValueError):
        b25.OpenPoseKeypoints(pose=np.zeros((18, 3)))


def test_coco18_body25_round_trip():
    pose25 = b25.OpenPoseKeypoints.from_json_dict(_json("00891_00")).pose
    k18 = b25.body25_to_coco18(pose25)
    assert k18.shape == (18, 3)
    back = b25.coco18_to_body25(k18)
    idx = list(b25.COCO18_TO_BODY25)
    assert np.array_equal(back[idx], pose25[idx])
    assert not back[19:].any()
    # MidHip synthesised as the hip midpoint, confidence = min
    np.testing.assert_allclose(back[8, :2], (pose25[9, :2] + pose25[12, :2]) / 2, atol=1e-4)
    assert back[8, 2] == pytest.approx(min(pose25[9, 2], pose25[12, 2]))
    # names line up
    assert [b25.BODY25_NAMES[i] for i in idx] == list(b25.COCO18_NAMES)


def test_midhip_needs_both_hips():
    k18 = np.zeros((18, 3), np.float32)
    k18[8] = (100, 500, 0.9)  # RHip only
    assert not b25.coco18_to_body25(k18)[8].any()


def test_index_trap_hips_land_on_hips():
    """COCO-18 JSON (the hand-written 00006_00 file, 54 values): hips must be BODY_25 9/12."""
    d = json.loads((DATA / "vitonhd-v3-reference" / "openpose_json" / "00006_00_keypoints.json").read_text())
    raw = np.array(d["people"][0]["pose_keypoints_2d"], np.float32).reshape(18, 3)
    kp = b25.OpenPoseKeypoints.from_json_dict(d)
    assert np.array_equal(kp.pose[9], raw[8]) and np.array_equal(kp.pose[12], raw[11])   # hips
    assert np.array_equal(kp.pose[10], raw[9]) and np.array_equal(kp.pose[13], raw[12])  # knees
    # the hips sit on parsed pants / upper clothes, the "knee" indices sit far lower
    parse = np.array(Image.open(DATA / "vitonhd-v3-reference" / "image-parse-v3" / "00006_00.png"))
    for j in (9, 12):
        x, y = kp.pose[j, :2].astype(int)
        assert parse[y, x] in (5, 9, 12), (j, parse[y, x])
    assert kp.pose[9, 1] < raw[9, 1] - 200


def test_coco18_view():
    kp = b25.OpenPoseKeypoints.from_json_dict(_json("00891_00"))
    v = kp.coco18_view()
    pts = np.array(v["pose_keypoints_2d"])
    assert pts.shape == (18, 2)
    np.testing.assert_allclose(pts[8], kp.pose[9, :2] / 2, rtol=1e-6)
    assert pts[4].tolist() == [0.0, 0.0]          # RWrist is missing in 00891_00


@pytest.mark.parametrize("id_", IDS)
def test_render_matches_official(id_):
    kp = b25.OpenPoseKeypoints.from_json_dict(_json(id_))
    ours = pr.render_pose(kp, (768, 1024))
    off = _render(id_)
    assert ours.shape == off.shape and ours.dtype == np.uint8
    a, b = ours.any(-1), off.any(-1)
    iou = (a & b).sum() / (a | b).sum()
    exact = (ours == off).all(-1)[a | b].mean()
    # measured: IoU 0.99990-0.99997, exact colour on 99.25-99.97 % of drawn pixels
    assert iou >= 0.995, f"render IoU {iou:.5f}"
    assert exact >= 0.98, f"exact-colour agreement {exact:.5f}"
    # no face drawn, black background
    assert not ours[:20].any()


@pytest.mark.parametrize("id_", IDS)
def test_keypoints_from_official_render(id_):
    truth = b25.OpenPoseKeypoints.from_json_dict(_json(id_)).pose
    rec = pfr.keypoints_from_render(_render(id_))
    visible = truth[:, 2] > 0.05
    found = rec[:, 2] > 0
    assert np.array_equal(found, visible), (np.nonzero(found != visible)[0])
    err = np.hypot(*(rec[visible, :2] - truth[visible, :2]).T)
    # measured: max 1.45 px (a wrist under the hand skeleton), median ~0.2 px
    assert err.max() <= 2.0, f"max joint error {err.max():.2f} px"
    assert np.median(err) <= 0.5, f"median joint error {np.median(err):.2f} px"


def test_keypoints_from_render_of_our_render_with_shared_colours():
    """Neck/MidHip and ankle/toes/heel share colours: they are assigned by skeleton links."""
    pose = np.zeros((25, 3), np.float32)
    pts = {0: (380, 150), 1: (380, 320), 2: (280, 320), 3: (260, 520), 4: (250, 700),
           5: (480, 320), 6: (500, 520), 7: (510, 700), 8: (380, 660), 9: (320, 660),
           10: (320, 820), 11: (320, 940), 12: (440, 660), 13: (440, 820), 14: (440, 940),
           15: (360, 130), 16: (400, 130), 17: (340, 150), 18: (420, 150),
           19: (470, 990), 20: (492, 984), 21: (432, 968),     # left foot
           22: (290, 990), 23: (268, 984), 24: (328, 968)}     # right foot
    for j, (x, y) in pts.items():
        pose[j] = (x + 0.3, y - 0.2, 0.9)
    rec = pfr.keypoints_from_render(pr.render_pose(b25.OpenPoseKeypoints(pose)))
    assert np.array_equal(rec[:, 2] > 0, pose[:, 2] > 0)
    err = np.hypot(*(rec[:, :2] - pose[:, :2]).T)
    feet = [11, 14, 19, 20, 21, 22, 23, 24]
    assert np.delete(err, feet).max() <= 1.0, err
    # same-colour foot limbs overlapping below the ankle look like disc pixels: the ankle
    # estimate slides ~8 px down (documented limitation); toes and heels stay exact
    assert err[feet].max() <= 10.0, err
    assert err[[19, 20, 21, 22, 23, 24]].max() <= 1.0, err


def test_keypoints_from_render_empty():
    assert not pfr.keypoints_from_render(np.zeros((64, 48, 3), np.uint8)).any()
    with pytest.raises(ValueError):
        pfr.keypoints_from_render(np.zeros((64, 48), np.uint8))


def _reference_render(kp: b25.OpenPoseKeypoints, size=(768, 1024)) -> np.ndarray:
    """Straightforward full-canvas rasteriser of the same model (the original implementation):
    render_pose's windowed, batched version must give the very same bytes."""
    w, h = size
    canvas = np.zeros((h, w, 3), np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = min(w, h)
    for pts, pairs, colours, thr, hw in (
            (kp.pose, b25.BODY25_PAIRS, b25.BODY25_COLOURS, 0.05, base / 120.0),
            (kp.hand_left, b25.HAND_PAIRS, b25.HAND_COLOURS, 0.2, base / 80.0),
            (kp.hand_right, b25.HAND_PAIRS, b25.HAND_COLOURS, 0.2, base / 80.0)):
        vis = pts[:, 2] > thr
        if not vis.any():
            continue
        s = pr._skeleton_scale(pts, vis)
        b2, r2 = (s * hw) ** 2, (s * base / 100.0) ** 2
        masks = []
        for a, b in pairs:
            if not (vis[a] and vis[b]):
                continue
            xa, ya, xb, yb = (float(v) for v in (pts[a, 0], pts[a, 1], pts[b, 0], pts[b, 1]))
            xp, yp = (xa + xb) / 2.0, (ya + yb) / 2.0
            a2 = (xa - xp) ** 2 + (ya - yp) ** 2
            if a2 <= 0:
                continue
            ang = np.arctan2(yb - ya, xb - xa)
            sn, cs = np.float32(np.sin(ang)), np.float32(np.cos(ang))
            da = cs * (xx - xp) + sn * (yy - yp)
            db = sn * (xx - xp) - cs * (yy - yp)
            masks.append((da * da / a2 + db * db / b2 <= 1.0, colours[b % len(colours)]))
        for i in np.flatnonzero(vis):
            x, y = float(pts[i, 0]), float(pts[i, 1])
            masks.append(((xx - x) ** 2 + (yy - y) ** 2 <= r2, colours[i % len(colours)]))
        for m, c in masks:
            canvas[m] = 0.6 * c + (1.0 - 0.6) * canvas[m]
    return np.clip(np.floor(canvas + 1e-3), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("id_", IDS)
def test_render_equals_full_canvas_reference(id_):
    """Windowed rasterisation is exact: same bytes as a full-canvas rasteriser, also for a skeleton
    running off the canvas and at another size."""
    kp = b25.OpenPoseKeypoints.from_json_dict(_json(id_))
    assert np.array_equal(pr.render_pose(kp), _reference_render(kp))
    moved = kp.pose.copy()
    moved[:, 0] += 300.25
    moved[:, 1] -= 120.5
    kp2 = b25.OpenPoseKeypoints(moved, kp.face, kp.hand_left, kp.hand_right)
    assert np.array_equal(pr.render_pose(kp2), _reference_render(kp2))
    assert np.array_equal(pr.render_pose(kp, (384, 512)), _reference_render(kp, (384, 512)))


def test_render_empty_pose_is_black():
    out = pr.render_pose(b25.OpenPoseKeypoints(np.zeros((25, 3), np.float32)), (48, 64))
    assert out.shape == (64, 48, 3) and not out.any()
