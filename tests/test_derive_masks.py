"""vitonprep.derive.masks_idm: IDM-VTON get_mask_location and the DressCode mask."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vitonprep.derive import masks_idm as mk
from vitonprep.derive.body25 import OpenPoseKeypoints

DATA = Path(__file__).parents[1] / "data"
OFFICIAL = DATA / "vitonhd-official"
IDS = ("00891_00", "03615_00", "07445_00")


@lru_cache(maxsize=None)
def _person(id_: str):
    """IDM parse from the official CIHP parse, official BODY_25 -> COCO-18 at 384x512,
    and the CIHP parse at 384x512 for checks."""
    cihp = np.array(Image.open(OFFICIAL / "image-parse" / f"{id_}.png"))
    d = json.loads((OFFICIAL / "openpose-json" / f"{id_}_keypoints.json").read_text())
    pose18 = np.array(OpenPoseKeypoints.from_json_dict(d).coco18_view()["pose_keypoints_2d"])
    small = np.array(Image.fromarray(cihp).resize((384, 512), Image.NEAREST))
    return mk.cihp_to_idm_parse(cihp), pose18, small


def test_cihp_to_idm_parse():
    idm, _, small = _person(IDS[0])
    cihp = np.array(Image.open(OFFICIAL / "image-parse" / f"{IDS[0]}.png"))
    assert idm.max() <= 18
    assert np.all(idm[cihp == 10] == 18) and np.all(idm[cihp == 13] == 11)
    assert np.all(idm[cihp == 5] == 4) and np.all(idm[cihp == 9] == 6)


@pytest.mark.parametrize("id_", IDS)
def test_upper_body_mask(id_):
    idm, pose18, small = _person(id_)
    for model_type in ("hd", "dc"):
        m = mk.get_mask_location(model_type, "upper_body", idm, pose18)
        assert m.shape == (512, 384) and m.dtype == bool
        upper = small == 5
        cover = (m & upper).sum() / upper.sum()
        assert cover >= 0.95, f"{model_type}: upper clothes coverage {cover:.3f}"
        assert not (m & (small == 13)).any(), "face must be kept"
        assert not (m & np.isin(small, (9, 12))).any(), "pants/skirt are fixed for upper_body"
        assert 0.05 < m.mean() < 0.6


@pytest.mark.parametrize("id_", IDS)
def test_hd_vs_dc(id_):
    idm, pose18, _ = _person(id_)
    hd = mk.get_mask_location("hd", "upper_body", idm, pose18)
    dc = mk.get_mask_location("dc", "upper_body", idm, pose18)
    assert hd.sum() > dc.sum()                  # wider arm polylines (60 vs 45 px)
    assert (dc & ~hd).sum() <= 0.001 * dc.sum()  # essentially a subset


@pytest.mark.parametrize("id_", IDS)
def test_lower_body_and_dresses(id_):
    idm, pose18, small = _person(id_)
    lower = mk.get_mask_location("hd", "lower_body", idm, pose18)
    bottoms = np.isin(small, (9, 12))
    assert (lower & bottoms).sum() / bottoms.sum() >= 0.95
    assert not (lower & (small == 5)).any(), "upper clothes are fixed for lower_body"
    dresses = mk.get_mask_location("hd", "dresses", idm, pose18)
    both = np.isin(small, (5, 9, 12))
    assert (dresses & both).sum() / both.sum() >= 0.95


def test_mask_is_single_filled_component():
    import cv2

    idm, pose18, _ = _person("03615_00")
    m = mk.get_mask_location("hd", "upper_body", idm, pose18).astype(np.uint8)
    n, _ = cv2.connectedComponents(m)
    assert n == 2                                      # background + one component
    n_bg, _ = cv2.connectedComponents(1 - m)
    assert n_bg == 2                                   # no holes


def test_missing_wrist_uses_parsed_arm():
    idm, pose18, small = _person("00891_00")         # right wrist missing in the JSON
    assert pose18[4].tolist() == [0.0, 0.0]
    m = mk.get_mask_location("hd", "upper_body", idm, pose18)
    assert m.any()


def test_invalid_arguments():
    idm, pose18, _ = _person(IDS[0])
    with pytest.raises(ValueError, match="hd, dc"):
        mk.get_mask_location("xl", "upper_body", idm, pose18)
    with pytest.raises(ValueError, match="upper_body, lower_body, dresses"):
        mk.get_mask_location("hd", "shoes", idm, pose18)
    with pytest.raises(ValueError, match="upper_body"):
        mk.dresscode_mask("tops", idm, pose18, 512, 384)


@pytest.mark.parametrize("id_", IDS)
@pytest.mark.parametrize("size", [(512, 384), (1024, 768)])
def test_dresscode_mask(id_, size):
    idm, pose18, _ = _person(id_)
    h, w = size
    small = np.array(Image.fromarray(
        np.array(Image.open(OFFICIAL / "image-parse" / f"{id_}.png"))).resize((w, h), Image.NEAREST))
    up = mk.dresscode_mask("upper_body", idm, pose18, h, w)
    assert up.shape == (h, w) and up.dtype == bool
    assert (up & (small == 5)).sum() / (small == 5).sum() >= 0.95
    assert not (up & np.isin(small, (13, 2, 9, 12))).any()   # face, hair, bottoms kept
    low = mk.dresscode_mask("lower_body", idm, pose18, h, w)
    pants = small == 9
    if pants.any():
        assert (low & pants).sum() / pants.sum() >= 0.95
    assert not (low & (small == 5)).any()


def test_dresscode_variants_differ_at_512():
    idm, pose18, _ = _person("07445_00")
    a = mk.dresscode_mask("upper_body", idm, pose18, 512, 384, variant="idm")
    b = mk.dresscode_mask("upper_body", idm, pose18, 512, 384, variant="dresscode")
    assert a.sum() > b.sum()
