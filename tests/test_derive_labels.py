"""vitonprep.derive.labels: label sets, VITON-HD palette, remaps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vitonprep.derive import labels as L

DATA = Path(__file__).parents[1] / "data"
PARSE_FILES = sorted((DATA / "vitonhd-official" / "image-parse").glob("*.png")) + [
    DATA / "vitonhd-v3-reference" / "image-parse-v3" / "00006_00.png",
    DATA / "vitonhd-v3-reference" / "image-parse-agnostic-v3.2" / "00006_00.png",
]


def test_label_set_sizes():
    assert len(L.CIHP_LABELS) == 20 and len(L.LIP_LABELS) == 20 and len(L.ATR_LABELS) == 18
    assert L.CIHP_LABELS[10] == "Torso-skin" and L.LIP_LABELS[10] == "Jumpsuits"
    assert [i for i, (a, b) in enumerate(zip(L.CIHP_LABELS, L.LIP_LABELS, strict=True)) if a != b] == [10]


@pytest.mark.parametrize("path", PARSE_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_palette_equals_official_files(path):
    assert len(PARSE_FILES) == 5
    im = Image.open(path)
    assert im.mode == "P"
    assert len(L.CIHP_PALETTE) == 768
    assert im.getpalette() == L.CIHP_PALETTE


@pytest.mark.parametrize("path", PARSE_FILES, ids=lambda p: p.name)
def test_palette_image_round_trip(path, tmp_path):
    labels = L.palette_image_to_labels(Image.open(path))
    assert labels.dtype == np.uint8 and labels.shape == (1024, 768) and labels.max() <= 19
    img = L.labels_to_palette_image(labels)
    assert img.mode == "P" and img.getpalette() == L.CIHP_PALETTE
    img.save(tmp_path / "x.png")
    back = Image.open(tmp_path / "x.png")
    assert np.array_equal(np.array(back), labels)
    assert np.array_equal(np.array(back.convert("RGB")), np.array(Image.open(path).convert("RGB")))


def test_palette_image_to_labels_rejects_rgb():
    with pytest.raises(ValueError, match="RGB"):
        L.palette_image_to_labels(Image.new("RGB", (4, 4)))
    assert L.palette_image_to_labels(Image.new("L", (3, 2), 7)).tolist() == [[7, 7, 7]] * 2


def test_hrviton_groups():
    assert set(L.HRVITON_GROUPS) == set(range(20))
    assert sorted(set(L.HRVITON_GROUPS.values())) == list(range(13))
    g = L.to_hrviton_groups(np.arange(20, dtype=np.uint8).reshape(4, 5))
    expected = [0, 1, 1, 12, 2, 3, 3, 3, 11, 4, 0, 12, 4, 2, 5, 6, 7, 8, 9, 10]
    assert g.ravel().tolist() == expected


def test_lip_to_cihp_only_jumpsuit_changes():
    lip = np.arange(20, dtype=np.uint8)
    out = L.lip_to_cihp(lip)
    assert out[10] == 6
    assert np.array_equal(np.delete(out, 10), np.delete(lip, 10))


def test_atr_to_cihp_table():
    out = L.atr_to_cihp(np.arange(18, dtype=np.uint8))
    names = [L.CIHP_LABELS[i] for i in out]
    # same-named classes map onto each other
    for atr_id, atr_name in enumerate(L.ATR_LABELS):
        if atr_name in L.CIHP_LABELS and atr_name != "Background":
            assert names[atr_id] == atr_name, atr_name
    assert out[8] == 9 and out[16] == 0 and out[17] == 11  # belt, bag, scarf


def test_cihp_to_atr_and_back_preserves_shared_classes():
    cihp = np.array(Image.open(PARSE_FILES[0]))
    atr = L.cihp_to_atr(cihp)
    assert atr.max() <= 17
    back = L.atr_to_cihp(atr)
    shared = ~np.isin(cihp, (3, 7, 8, 10))  # glove, coat, socks, neck are lossy
    assert np.array_equal(back[shared], cihp[shared])
    assert np.all(atr[cihp == 10] == 11)                      # neck -> ATR face by default
    assert np.all(L.cihp_to_atr(cihp, neck_label=0)[cihp == 10] == 0)


def test_cihp_to_atr_sided_glove_and_socks():
    cihp = np.zeros((10, 20), np.uint8)
    cihp[:, :3] = 14
    cihp[:, 17:] = 15
    cihp[0, 4] = 3      # glove near the left arm
    cihp[0, 15] = 3     # glove near the right arm
    atr = L.cihp_to_atr(cihp)
    assert atr[0, 4] == 14 and atr[0, 15] == 15
    legs = np.zeros((10, 20), np.uint8)
    legs[:, :3] = 17
    legs[5, 5] = 8
    assert L.cihp_to_atr(legs)[5, 5] == 13


def test_synthesise_neck():
    cihp = np.array([[13, 13, 2], [0, 5, 13]], np.uint8)
    atr_face = np.array([[1, 1, 1], [1, 1, 0]], bool)
    lip_face = np.array([[1, 0, 0], [0, 0, 1]], bool)
    out = L.synthesise_neck(cihp, atr_face, lip_face)
    assert out.tolist() == [[13, 10, 2], [10, 10, 13]]
