"""Heuristic CIHP parsing (``parse_person``) on the real chain: ``MediapipePose`` on the photo, then the parser.

Measured on this machine (mIoU over HR-VITON's 13 groups, groups present in either map):
00891_00 0.881, 03615_00 0.844, 07445_00 0.683, 00006_00 0.842, mean 0.812. The asserted mean is the
project's target (0.70); the per-image floor (0.62) sits below the weakest image (07445_00, whose official
parse calls the tight sleeves arms). Structural checks run on the 5 VITON-HD samples and the 4 DressCode
full-body photos, which have no labels.
"""

from __future__ import annotations

import csv
import dataclasses

import numpy as np
import pytest
from PIL import Image

from vitonprep.backends import parsing_heuristic as ph
from vitonprep.backends.pose_mediapipe import MediapipePose
from vitonprep.backends.protocols import ParsingBackend
from vitonprep.backends.results import PoseResult
from vitonprep.derive.body25 import OpenPoseKeypoints
from vitonprep.errors import InputError, NoPersonError

MEAN_MIOU_MIN = 0.70
IMAGE_MIOU_MIN = 0.62

LABELLED = {  # id -> (image, official CIHP parse), relative to data/
    "00891_00": ("vitonhd-official/image/00891_00.jpg", "vitonhd-official/image-parse/00891_00.png"),
    "03615_00": ("vitonhd-official/image/03615_00.jpg", "vitonhd-official/image-parse/03615_00.png"),
    "07445_00": ("vitonhd-official/image/07445_00.jpg", "vitonhd-official/image-parse/07445_00.png"),
    "00006_00": ("vitonhd-v3-reference/image/00006_00.jpg", "vitonhd-v3-reference/image-parse-v3/00006_00.png"),
}


def _rgb(path) -> np.ndarray:
    im = Image.open(path).convert("RGB")
    if im.size != (768, 1024):
        im = im.resize((768, 1024), Image.BILINEAR)
    return np.asarray(im)


def _centroid(lab: np.ndarray, ids) -> np.ndarray | None:
    ys, xs = np.nonzero(np.isin(lab, ids))
    return None if ys.size == 0 else np.array([xs.mean(), ys.mean()])


@pytest.fixture(scope="module")
def pose_backend():
    b = MediapipePose().setup()
    yield b
    b.close()


@pytest.fixture(scope="module")
def labelled(pose_backend, data_dir):
    out = {}
    for pid, (img, parse) in LABELLED.items():
        rgb = _rgb(data_dir / img)
        pose = pose_backend(rgb)
        out[pid] = (rgb, pose, np.asarray(Image.open(data_dir / parse)))
    return out


@pytest.fixture(scope="module")
def unlabelled(pose_backend, data_dir):
    """name -> (rgb, pose, category, parse) for the 5 VITON-HD samples and the 4 DressCode photos."""
    cats = {}
    with open(data_dir / "dresscode-photos" / "categories.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["kind"] == "person":
                cats[row["file"].split("/")[-1][:-4]] = row["category"]
    paths = sorted((data_dir / "samples" / "person").glob("*.jpg")) + \
        sorted((data_dir / "dresscode-photos" / "person").glob("*.jpg"))
    out = {}
    for p in paths:
        rgb = _rgb(p)
        pose = pose_backend(rgb)
        cat = "dresses" if cats.get(p.stem) == "dresses" else "upper_body"
        out[p.stem] = (rgb, pose, cat, ph.parse_person(rgb, pose, category=cat))
    assert len(out) == 9
    return out


# ------------------------------------------------------------------------------------------------- metric
def test_parsing_miou_groups():
    a = np.zeros((4, 6), np.uint8)
    a[:2] = 5
    a[2:, :3] = 13
    assert ph.parsing_miou(a, a) == (1.0, {0: 1.0, 2: 1.0, 3: 1.0})
    b = a.copy()
    b[a == 5] = 6  # dress and upper clothes share HR-VITON's "upper" group
    b[3, 5] = 10  # neck counts as background
    assert ph.parsing_miou(b, a)[0] == 1.0
    c = a.copy()
    c[2:, :3] = 2  # face predicted as hair: both groups count, both IoU 0
    m, per = ph.parsing_miou(c, a)
    assert per == {0: 1.0, 1: 0.0, 2: 0.0, 3: 1.0} and m == 0.5
    with pytest.raises(ValueError):
        ph.parsing_miou(a, a[:3])


# ----------------------------------------------------------------------------------------------- accuracy
def test_miou_against_official_parses(labelled):
    scores = {}
    for pid, (rgb, pose, truth) in labelled.items():
        pred = ph.parse_person(rgb, pose)
        assert pred.shape == truth.shape and pred.dtype == np.uint8
        scores[pid] = ph.parsing_miou(pred, truth)[0]
    assert min(scores.values()) >= IMAGE_MIOU_MIN, scores
    assert np.mean(list(scores.values())) >= MEAN_MIOU_MIN, scores


def test_without_face_keypoints_face_comes_from_the_eyes(labelled):
    """FaceMesh may fail on a turned face: the face polygon is then synthesised from the BODY_25 eyes."""
    rgb, pose, truth = labelled["00891_00"]
    kp = pose.keypoints
    no_face = PoseResult(
        keypoints=OpenPoseKeypoints(pose=kp.pose, hand_left=kp.hand_left, hand_right=kp.hand_right),
        landmarks=pose.landmarks, person_mask=pose.person_mask)
    pred = ph.parse_person(rgb, no_face)
    m, per = ph.parsing_miou(pred, truth)
    assert per[2] >= 0.7, per  # face group
    assert m >= IMAGE_MIOU_MIN


# --------------------------------------------------------------------------------------------- structure
def test_labels_from_the_allowed_set(unlabelled):
    for name, (_, _, _, lab) in unlabelled.items():
        assert set(np.unique(lab).tolist()) <= set(ph.OUTPUT_LABELS), name
        # the parse covers exactly the person mask
        np.testing.assert_array_equal(lab > 0, unlabelled[name][1].person_mask > 0.5, err_msg=name)


def test_face_above_upper_garment(unlabelled):
    with_face = 0
    for name, (_, _, _cat, lab) in unlabelled.items():
        face, garment = _centroid(lab, (13,)), _centroid(lab, (5, 6))
        assert garment is not None, name
        if face is not None:
            with_face += 1
            assert face[1] < garment[1], name
            if not (lab[0] == 13).any():  # a whole face (a head cut by the frame keeps only its chin and lips)
                assert (lab == 13).sum() > 2000, name
    assert with_face == 9  # every person: a head cut by the frame keeps its visible chin


def test_arms_on_the_persons_sides(unlabelled):
    """Label 14 (person's left arm) on the image's right for these frontal persons, 15 on the left."""
    for name, (_, pose, _, lab) in unlabelled.items():
        left, right = _centroid(lab, (14,)), _centroid(lab, (15,))
        assert left is not None and right is not None, name
        assert left[0] > right[0], name
        # and on the side of the matching shoulder
        mid = pose.keypoints.pose[1, 0]
        assert left[0] > mid > right[0], name


def test_garments_by_category(unlabelled):
    for name, (_, _, cat, lab) in unlabelled.items():
        ids = set(np.unique(lab).tolist())
        if cat == "dresses":
            assert 6 in ids and not ids & {5, 9, 12}, (name, ids)
        else:
            assert {5, 9} <= ids and 6 not in ids, (name, ids)


def test_full_body_photos_have_shoes_left_and_right(unlabelled):
    for name in ("049205_0", "051482_0", "052472_0", "052964_0"):
        lab = unlabelled[name][3]
        left, right = _centroid(lab, (18,)), _centroid(lab, (19,))
        assert left is not None and right is not None, name
        assert left[0] > right[0], name
        body = _centroid(lab, (5, 6, 9))
        assert left[1] > body[1] and right[1] > body[1], name


def test_hair_and_neck_on_viton_samples(unlabelled):
    for name in ("00034_00", "00035_00", "00055_00", "01992_00"):
        lab = unlabelled[name][3]
        hair, face, neck = _centroid(lab, (2,)), _centroid(lab, (13,)), _centroid(lab, (10,))
        assert hair is not None and neck is not None, name
        assert hair[1] < neck[1] and face[1] < neck[1], name


# --------------------------------------------------------------------------------------------- errors
def test_errors(labelled):
    """Bad inputs are per-sample InputErrors (an empty person mask: NoPersonError), never a bare ValueError."""
    rgb, pose, _ = labelled["03615_00"]
    empty = PoseResult(keypoints=pose.keypoints, landmarks=pose.landmarks,
                       person_mask=np.zeros(rgb.shape[:2], np.float32))
    with pytest.raises(NoPersonError, match="empty"):
        ph.parse_person(rgb, empty)
    with pytest.raises(InputError, match="mask"):
        ph.parse_person(rgb, PoseResult(keypoints=pose.keypoints))
    with pytest.raises(InputError, match="category"):
        ph.parse_person(rgb, pose, category="shoes")
    with pytest.raises(InputError, match="RGB"):
        ph.parse_person(rgb[..., 0], pose)


def test_constants():
    assert ph.NAME == "parsing-heuristic-mediapipe" and ph.APPROXIMATE is True
    cfg = ph.HeuristicParsingConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.work_height = 10  # frozen


def test_backend_class_on_the_protocol(labelled):
    """The registered class: metadata on the class, built as cls(config, weights_dir), its call and batch call
    equal to parse_person, a bad sample's InputError returned in its place by call_batch."""
    cls = ph.HeuristicParser
    assert (cls.NAME, cls.KIND, cls.APPROXIMATE, cls.WEIGHT_FILES) == (ph.NAME, "parsing", True, ())
    assert cls.Config is ph.HeuristicParsingConfig and cls.LICENCE
    config = ph.HeuristicParsingConfig(work_height=256)
    backend = cls(config, None)
    assert isinstance(backend, ParsingBackend) and backend.config is config
    rgb, pose, _ = labelled["00891_00"]
    want = ph.parse_person(rgb, pose, config, category="upper_body")
    np.testing.assert_array_equal(backend(rgb, pose, "upper_body"), want)
    out = backend.call_batch([rgb, rgb], [pose, pose], ["upper_body", "shoes"])
    np.testing.assert_array_equal(out[0], want)
    assert isinstance(out[1], InputError) and "category" in str(out[1])
    assert not np.array_equal(want, ph.parse_person(rgb, pose))  # the config is used (work height 256, not 384)


def test_head_cut_by_the_frame_keeps_face_and_hair(unlabelled):
    """Three DressCode heads leave the frame at the top (eyes above it: no face keypoints). Their visible lips,
    chin and hair were parsed as neck; the face polygon now comes from BlazePose's extrapolated eyes and the
    neck, so most of the head's top rows are face or hair (051482_0 turns her head: the neck under her jaw
    reaches the top edge too)."""
    cut = 0
    for name, (_, pose, _, lab) in unlabelled.items():
        if (pose.keypoints.face[:, 2] > 0).sum() >= 60 or pose.landmarks[[2, 5], 1].mean() >= 0:
            continue
        cut += 1
        top = lab[:40]
        head = np.isin(top, (2, 13)).sum()
        assert head > 0.4 * (top > 0).sum(), (name, np.unique(top, return_counts=True))
        assert (lab == 13).sum() > 1000, name
    assert cut == 3
