"""A rebuild from shards keeps a padded photo's rectangle (issue 18 review).

A rebuild reads the stored canvas, whose own fit is the identity; the photo's rectangle comes from the input
meta.json's ``fit.person`` (untrusted). Real bundled photo: data/dresscode-photos 049205_0 cut at the knees
(768x820, wider than 3:4), so ``fit: pad`` adds bands above the cut head and below the cut legs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers.shards import samples_by_key
from PIL import Image

from vitonprep.backends.protocols import PhotoRect
from vitonprep.build import build_dataset
from vitonprep.codecs import decode_labels
from vitonprep.config import load_pipeline_config
from vitonprep.derive.body25 import OpenPoseKeypoints
from vitonprep.photos import Fit, fit_to_canvas
from vitonprep.rebuild import stored_fit

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def padded_build(tmp_path_factory) -> Path:
    raw = tmp_path_factory.mktemp("raw")
    (raw / "person").mkdir()
    (raw / "cloth").mkdir()
    photo = np.asarray(Image.open(DATA / "dresscode-photos" / "person" / "049205_0.jpg").convert("RGB"))[:820]
    Image.fromarray(photo).save(raw / "person" / "cut.jpg", quality=95)
    shutil.copy(DATA / "dresscode-photos" / "cloth" / "048554_1.jpg", raw / "cloth" / "top.jpg")
    (raw / "pairs.txt").write_text("cut.jpg top.jpg\n")
    out = raw.parent / "shards"
    report = build_dataset(load_pipeline_config("default"), raw, out)
    assert report.nsamples == 1, report.failures
    return out


def test_a_rebuild_keeps_the_pad_bands_out_of_frame(padded_build, tmp_path):
    (key, old), = samples_by_key(padded_build).items()
    meta = json.loads(old["meta.json"])
    top = round(meta["fit"]["person"]["offset"][1])
    bottom = top + round(820 * meta["fit"]["person"]["scale"])
    assert top > 50 and set(meta["person_check"]["cut_off"]) >= {"head", "feet"}
    build_dataset(load_pipeline_config("default"), padded_build, tmp_path / "again")
    new = samples_by_key(tmp_path / "again")[key]
    # the stored photo is a re-encoded JPEG, so the maps are remade from slightly other pixels: not byte-equal;
    # what must hold is the build's frame: before, the bands counted as photo again (joints, labels, cut-off sides)
    assert json.loads(new["meta.json"])["person_check"]["cut_off"] == meta["person_check"]["cut_off"]
    parse = decode_labels(new["parse.png"])
    assert not parse[:top].any() and not parse[bottom:].any()
    pose = OpenPoseKeypoints.from_json_dict(json.loads(new["pose.json"])).pose
    seen = pose[pose[:, 2] > 0]
    assert len(seen) > 5 and (seen[:, 1] >= top).all() and (seen[:, 1] < bottom).all(), seen


@pytest.mark.parametrize("fit", [
    None, "pad", {"person": None},
    {"person": {"mode": "tile", "scale": 1.0, "offset": [0, 0], "original_size": [1, 1]}},
    {"person": {"mode": "pad", "scale": float("nan"), "offset": [0, 0], "original_size": [768, 1024]}},
    {"person": {"mode": "pad", "scale": 10 ** 400, "offset": [0, 0], "original_size": [768, 1024]}},
    {"person": {"mode": "pad", "scale": 1.0, "offset": [0], "original_size": [768, 1024]}},
    {"person": {"mode": "pad", "scale": 1.0, "offset": [0, True], "original_size": [768, 1024]}},
    {"person": {"mode": "pad", "scale": 1.0, "offset": [0, 0], "original_size": [768.5, 1024]}},
    {"person": {"mode": "pad", "scale": 1.0, "offset": [0, 0], "original_size": [0, 1024]}},
    # well-formed but not the fit this canvas gets: the rectangle would lie off the canvas (review finding)
    {"person": {"mode": "pad", "scale": 1.0, "offset": [5000, 0], "original_size": [768, 1024]}},
    {"person": {"mode": "pad", "scale": 1.0, "offset": [-5000, 0], "original_size": [768, 1024]}},
    {"person": {"mode": "pad", "scale": 1.0, "offset": [0, 3000], "original_size": [768, 1024]}},
    {"person": {"mode": "pad", "scale": 2.0, "offset": [0, 0], "original_size": [768, 1024]}},
])
def test_a_malformed_stored_fit_is_none(fit):
    assert stored_fit({} if fit is None else {"fit": fit}, (768, 1024)) is None


def test_a_stored_fit_is_read_back():
    fit = stored_fit({"fit": {"person": {"mode": "pad", "scale": 0.5, "offset": [0, 57.0],
                                         "original_size": [1536, 1820]}}}, (768, 1024))
    assert fit is not None and fit.offset == (0.0, 57.0) and fit.original_size == (1536, 1820)
    rgb = np.zeros((1820, 1536, 3), np.uint8)
    assert fit == fit_to_canvas(rgb, (768, 1024), "pad")[1]  # what the build recorded


@pytest.mark.parametrize("offset", [(5000, 0), (-5000, 0), (0, 3000), (0, -1024)])
def test_the_photo_rectangle_stays_on_the_canvas_whatever_the_fit_says(offset):
    rect = PhotoRect.of_fit(Fit("pad", 1.0, offset, (768, 1024)), 768, 1024)
    assert 0 <= rect.x0 <= rect.x1 <= 768 and 0 <= rect.y0 <= rect.y1 <= 1024, rect
