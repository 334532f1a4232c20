"""vitonprep.derive.masks_category: the lower_body / dresses agnostic mask bounded by shoes, hands, face and hem.

The four full-body DressCode photos of data/dresscode-photos go through the default pipeline (pose and parse); the
shoe boxes, hand points and hem rows below were read by eye from the photos (768x1024, no fit), not from any map.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vitonprep.codecs import decode_labels, decode_rgb
from vitonprep.config import load_pipeline_config
from vitonprep.derive import masks_category as mc
from vitonprep.derive.body25 import OpenPoseKeypoints
from vitonprep.raw import RawItem
from vitonprep.stages.pipeline import Pipeline

DATA = Path(__file__).parents[1] / "data"
PHOTOS = DATA / "dresscode-photos"
OFFICIAL = DATA / "vitonhd-official"

#: person -> (category, hem row, inner boxes (x0, y0, x1, y1) of the shoes' lower parts, hand centres), by eye
TRUTH = {
    "049205_0": ("lower_body", 890, ((240, 915, 375, 970), (440, 905, 485, 965)), ()),
    "051482_0": ("lower_body", 895, ((195, 945, 280, 995), (390, 935, 455, 985)), ()),
    "052472_0": ("dresses", 750, ((325, 895, 365, 950), (400, 895, 442, 950)), ((268, 480), (486, 480))),
    "052964_0": ("dresses", 675, ((290, 950, 335, 1000), (420, 905, 480, 965)), ()),
}


@pytest.fixture(scope="module")
def persons():
    """person -> (image, CIHP parse, keypoints) as the default pipeline makes them for the person's category (the
    parser reads the category)."""
    out = {}
    for category in ("lower_body", "dresses"):
        cloth = PHOTOS / "cloth" / ("051412_1.jpg" if category == "lower_body" else "053290_1.jpg")
        pipe = Pipeline.from_config(load_pipeline_config("default", {"category": category, "quality.enabled": False}))
        try:
            for pid in (p for p, truth in TRUTH.items() if truth[0] == category):
                person = PHOTOS / "person" / f"{pid}.jpg"
                s = pipe.run(RawItem(f"{pid}__{cloth.stem}", str(person), str(cloth), "unpaired", str(PHOTOS)))
                kp = OpenPoseKeypoints.from_json_dict(json.loads(s.members["pose.json"]))
                out[pid] = (decode_rgb(s.members["image.jpg"]), decode_labels(s.members["parse.png"]), kp)
        finally:
            pipe.close()
    return out


@pytest.mark.parametrize("pid", sorted(TRUTH))
def test_shoes_kept_and_mask_ends_near_the_hem(persons, pid):
    image, parse, kp = persons[pid]
    category, hem, shoes, hands = TRUTH[pid]
    mask = mc.category_mask(parse, kp, category, image)
    assert mask.shape == parse.shape and mask.dtype == bool
    for x0, y0, x1, y1 in shoes:
        assert mask[y0:y1, x0:x1].mean() <= 0.02, (pid, "shoe", (x0, y0), mask[y0:y1, x0:x1].mean())
    for x, y in hands:
        assert mask[y - 12:y + 12, x - 12:x + 12].mean() <= 0.1, (pid, "hand", (x, y))
    bottom = int(np.flatnonzero(mask.any(axis=1))[-1])
    # IDM's dilation is 20 px; the garment itself is covered down to its hem
    assert hem - 30 <= bottom <= hem + 45, (pid, bottom, hem)


@pytest.mark.parametrize("pid", sorted(TRUTH))
def test_maps_agree_with_the_mask(persons, pid):
    image, parse, kp = persons[pid]
    category = TRUTH[pid][0]
    agn, mask, parse_agn, gt = mc.category_maps(image, parse, kp, category)
    np.testing.assert_array_equal(mask, mc.category_mask(parse, kp, category, image))
    np.testing.assert_array_equal(agn, np.where(mask[..., None], np.uint8(128), image))
    np.testing.assert_array_equal(parse_agn, np.where(mask, 0, parse))
    assert gt.any() and not (gt & ~mask).any()  # the worn garment lies inside the region to inpaint
    assert not (gt & ~np.isin(parse, mc.GARMENT_LABELS[category])).any()


def test_bounds_only_remove_pixels_from_idm_mask(persons):
    """Every bound takes pixels out of IDM-VTON's mask; none adds any."""
    for pid, (category, *_rest) in TRUTH.items():
        image, parse, kp = persons[pid]
        bounded = mc.category_mask(parse, kp, category, image)
        idm = mc.idm_mask(parse, kp.pose, category)
        assert not (bounded & ~idm).any() and bounded.sum() < idm.sum(), pid


def test_official_person_without_feet_or_hands_keeps_the_hem_bound():
    """An official VITON-HD half-body person (no feet, no hand keypoints): the mask stops near the bottom of its
    garment labels, and the keypoints' absence is no error."""
    parse = np.array(Image.open(OFFICIAL / "image-parse" / "00891_00.png"))
    d = json.loads((OFFICIAL / "openpose-json" / "00891_00_keypoints.json").read_text())
    kp = OpenPoseKeypoints(pose=OpenPoseKeypoints.from_json_dict(d).pose)
    mask = mc.category_mask(parse, kp, "dresses")
    garment_bottom = int(np.flatnonzero(np.isin(parse, (5, 6, 7, 9, 12)).any(axis=1))[-1])
    assert mask.any() and int(np.flatnonzero(mask.any(axis=1))[-1]) <= garment_bottom + 21


def test_refuses_upper_body_and_bad_parse():
    kp = OpenPoseKeypoints(pose=np.zeros((25, 3), np.float32))
    with pytest.raises(ValueError, match="lower_body, dresses"):
        mc.category_mask(np.zeros((1024, 768), np.uint8), kp, "upper_body")
    with pytest.raises(ValueError, match="HxW"):
        mc.category_mask(np.zeros((4, 1024, 768), np.uint8), kp, "dresses")
    with pytest.raises(ValueError, match="one size"):
        mc.category_maps(np.zeros((1024, 768, 3), np.uint8), np.zeros((512, 384), np.uint8), kp, "dresses")


@pytest.mark.parametrize("pid", ["049205_0"])  # its trousers reach the shoes (051482_0's hem row ends above them)
def test_a_trouser_hem_over_the_shoes_is_masked(persons, pid):
    """The ankle keypoint lies inside a hem that falls over the shoe: the feet hulls keep the shoe, not the hem
    (before, the old hem stayed visible in agn.jpg). The hem is drawn as pants over the upper half of each shoe box
    read by eye, the lower half stays shoe."""
    image, parse, kp = persons[pid]
    hemmed = parse.copy()
    for x0, y0, x1, y1 in TRUTH[pid][2]:
        hemmed[y0 - 20:(y0 + y1) // 2, x0:x1] = 9
        hemmed[(y0 + y1) // 2:y1, x0:x1] = 18  # CIHP right shoe
    mask = mc.category_mask(hemmed, kp, "lower_body", image)
    for x0, y0, x1, y1 in TRUTH[pid][2]:
        assert mask[y0:(y0 + y1) // 2, x0:x1].mean() >= 0.95, (pid, "hem", mask[y0:(y0 + y1) // 2, x0:x1].mean())
        assert not mask[(y0 + y1) // 2:y1, x0:x1].any(), (pid, "shoe")
