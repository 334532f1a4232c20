"""vitonprep.derive.densepose: PARULA table, rendering, inverse."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vitonprep.derive import densepose as dp

DATA = Path(__file__).parents[1] / "data"
DENSEPOSE_JPG = DATA / "vitonhd-v3-reference" / "image-densepose" / "00006_00.jpg"

# the parula table, I = 0..24 (entry 0 = PARULA(0), never used by the renders)
SPEC_TABLE = [
    (53, 42, 135), (37, 60, 163), (20, 80, 194), (4, 97, 223), (8, 110, 221), (14, 122, 216),
    (20, 132, 212), (15, 144, 208), (11, 156, 203), (6, 166, 198), (22, 173, 185),
    (38, 179, 172), (55, 185, 159), (86, 187, 144), (114, 189, 130), (145, 191, 116),
    (170, 189, 105), (192, 188, 96), (216, 186, 86), (228, 192, 74), (240, 199, 60),
    (252, 206, 46), (251, 220, 36), (250, 235, 25), (249, 251, 14),
]


def test_parula_table_exact():
    assert dp.PARULA_RGB.shape == (25, 3) and dp.PARULA_RGB.dtype == np.uint8
    assert [tuple(c) for c in dp.PARULA_RGB.tolist()] == SPEC_TABLE


def test_render_black_background_and_colours():
    idx = np.arange(25, dtype=np.uint8).reshape(5, 5)
    rgb = dp.render_densepose(idx)
    assert rgb.shape == (5, 5, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0].tolist() == [0, 0, 0]                 # background = black canvas
    assert [tuple(c) for c in rgb.reshape(-1, 3)[1:].tolist()] == SPEC_TABLE[1:]


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.int64])
def test_render_is_the_table_lookup_for_any_index_dtype_and_shape(dtype):
    # the cv2.LUT path must give exactly the spec table per pixel, whatever the index array looks like
    rng = np.random.default_rng(0)
    for shape in ((1024, 768), (3, 1), (1, 7)):
        idx = rng.integers(0, 25, shape).astype(dtype)
        expected = np.zeros((*shape, 3), np.uint8)
        for i in range(1, 25):
            expected[idx == i] = SPEC_TABLE[i]
        assert np.array_equal(dp.render_densepose(idx), expected)
        assert np.array_equal(dp.render_densepose(idx[:, ::-1]), expected[:, ::-1])  # non-contiguous view
    assert dp.render_densepose(np.zeros((0, 4), dtype)).shape == (0, 4, 3)


def test_render_rejects_out_of_range():
    with pytest.raises(ValueError, match="0..24"):
        dp.render_densepose(np.array([[0, 25]], np.uint8))
    with pytest.raises(ValueError):
        dp.render_densepose(np.zeros((2, 2, 3), np.uint8))


def test_inverse_is_exact_on_clean_renders():
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 25, (64, 48)).astype(np.uint8)
    assert np.array_equal(dp.parts_from_densepose_image(dp.render_densepose(idx)), idx)


def test_official_densepose_jpeg():
    img = np.array(Image.open(DENSEPOSE_JPG).convert("RGB"))
    table = np.concatenate([np.zeros((1, 3)), dp.PARULA_RGB[1:]]).astype(np.float32)
    d = np.sqrt(((img[:, :, None, :].astype(np.float32) - table) ** 2).sum(-1)).min(-1)
    within = (d <= 1.5).mean()
    assert within >= 0.90, f"{within:.2%} of pixels within RGB distance 1.5 of the table"
    # background is the black canvas, not PARULA(0)
    parts = dp.parts_from_densepose_image(img)
    assert (parts == 0).mean() > 0.5
    assert (np.abs(img.astype(int) - np.array(SPEC_TABLE[0])).max(-1) <= 3).sum() < 1000
    # render(parts_from(img)) reproduces the image up to JPEG noise
    back = dp.render_densepose(parts)
    diff = np.sqrt(((back.astype(np.float32) - img) ** 2).sum(-1))
    assert diff.mean() < 2.0, f"mean RGB distance {diff.mean():.2f}"
    assert (diff <= 1.5).mean() >= 0.90
    # torso (1, 2) and head (23, 24) are present for a frontal person
    assert np.isin([2, 23, 24], np.unique(parts)).all()
