"""mediapipe person mask / person count / framing checks.

Measured mask IoU against the official parse silhouette (labels > 0), mask thresholded at 0.5:
BlazePose mask 0.969 / 0.976 / 0.964 (00891 / 03615 / 07445, mean 0.970), SelfieSegmentation model 0
0.948 / 0.946 / 0.964 (mean 0.952), model 1 0.947 / 0.862 / 0.962 (mean 0.924).
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from PIL import Image

from vitonprep.backends import person_mediapipe as pp
from vitonprep.backends.pose_mediapipe import MediapipePose
from vitonprep.backends.protocols import PhotoRect
from vitonprep.backends.results import NoPersonError, PersonCheck, PoseResult
from vitonprep.derive.body25 import OpenPoseKeypoints

OFFICIAL = ("00891_00", "03615_00", "07445_00")


def _rgb(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


@pytest.fixture(scope="module")
def person():
    b = pp.MediapipePerson().setup()
    yield b
    b.close()


@pytest.fixture(scope="module")
def pose():
    b = MediapipePose().setup()
    yield b
    b.close()


@pytest.fixture(scope="module")
def official(pose, data_dir):
    out = {}
    for pid in OFFICIAL:
        rgb = _rgb(data_dir / "vitonhd-official" / "image" / f"{pid}.jpg")
        parse = np.asarray(Image.open(data_dir / "vitonhd-official" / "image-parse" / f"{pid}.png")) > 0
        out[pid] = (rgb, parse, pose(rgb))
    return out


def test_mask_iou_against_official_parse(person, official):
    pose_iou, selfie_iou = [], []
    for rgb, parse, res in official.values():
        m = person.person_mask(rgb, res)
        assert m.dtype == bool and m.shape == parse.shape
        pose_iou.append(_iou(m, parse))
        selfie_iou.append(_iou(person.person_mask(rgb), parse))
    assert min(pose_iou) >= 0.95, pose_iou          # measured min 0.964
    assert np.mean(pose_iou) >= 0.96, pose_iou      # measured 0.970
    assert min(selfie_iou) >= 0.93, selfie_iou      # measured min 0.946


def test_check_official_persons(person, official):
    for pid, (rgb, _, res) in official.items():
        c = person.check_person(rgb, res)
        assert isinstance(c, PersonCheck)
        assert c.num_persons == 1, pid
        assert c.cut_off == ("feet",), (pid, c.cut_off)  # VITON-HD framing: head in, legs cut
        x0, y0, x1, y1 = c.person_box
        assert 0 <= x0 < x1 <= 768 and 0 <= y0 < 60 and y1 == 1024, (pid, c.person_box)
        assert c.person_height_frac > 0.9


def test_headless_full_body_photo(person, pose, data_dir):
    rgb = _rgb(data_dir / "dresscode-photos" / "person" / "052472_0.jpg")  # cropped at the chin, feet in
    for c in (person.check_person(rgb, pose(rgb)), person.check_person(rgb)):
        assert c.num_persons == 1
        assert "head" in c.cut_off and "feet" not in c.cut_off, c.cut_off


def _side_by_side(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    canvas = np.full((1024, 768, 3), 255, np.uint8)
    for i, im in enumerate((a, b)):
        canvas[256:768, 384 * i:384 * (i + 1)] = np.asarray(Image.fromarray(im).resize((384, 512), Image.BILINEAR))
    return canvas


def test_two_persons_are_counted(person, pose, data_dir):
    d = data_dir / "samples" / "person"
    img = _side_by_side(_rgb(d / "00034_00.jpg"), _rgb(d / "00035_00.jpg"))
    assert person.check_person(img).num_persons == 2
    c = person.check_person(img, pose(img))
    assert c.num_persons == 2
    assert c.person_box[2] - c.person_box[0] < 384  # the box holds one of the two persons
    single = np.full((1024, 768, 3), 255, np.uint8)
    single[256:768, 192:576] = np.asarray(Image.fromarray(_rgb(d / "00034_00.jpg")).resize((384, 512)))
    assert person.check_person(single).num_persons == 1


def test_blank_image(person, pose):
    blank = np.full((1024, 768, 3), 255, np.uint8)
    c = person.check_person(blank)
    assert c == PersonCheck(0, None, 0.0, ())
    assert not person.person_mask(blank).any()
    with pytest.raises(NoPersonError):
        pose(blank)


def test_tiny_image(person):
    c = person.check_person(np.full((16, 16, 3), 128, np.uint8))
    assert c.num_persons in (0, 1)


def test_picklable(person):
    clone = pickle.loads(pickle.dumps(person))
    assert clone.config == person.config and clone._seg is None
    fresh = pp.MediapipePerson(pp.MediapipePersonConfig(selfie_model=1))
    assert pickle.loads(pickle.dumps(fresh)).config.selfie_model == 1
    with pytest.raises(ValueError):
        pp.MediapipePerson(pp.MediapipePersonConfig(selfie_model=2))


def test_the_landmark_box_of_an_unsegmented_person_stays_in_the_photo(person):
    """No segmentation and no face (a flat grey canvas): the box comes from the pose landmarks, and those lying in
    fit: pad's bands are out of frame (review finding: the box reached into the pad)."""
    rgb = np.full((1024, 768, 3), 128, np.uint8)
    lm = np.zeros((33, 4), np.float32)
    lm[:, 0] = np.linspace(200, 500, 33)
    lm[:, 1] = np.linspace(40, 900, 33)  # the first ones lie in the top band
    lm[:, 3] = 1.0
    pose = PoseResult(OpenPoseKeypoints(pose=np.zeros((25, 3), np.float32)), landmarks=lm)
    check = person(rgb, pose, PhotoRect(0, 100, 768, 924))
    assert check.person_box is not None and check.person_box[1] >= 100, check
    whole = person(rgb, pose, None)  # the whole canvas is the photo: every landmark counts
    assert whole.person_box is not None and whole.person_box[1] == 40, whole
