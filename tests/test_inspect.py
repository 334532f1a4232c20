"""inspect: the meta.json quality field read as untrusted, samples ordered flagged first, pages through every
sample, overlays drawn on the photo, and the command's summary and exit codes."""

from __future__ import annotations

import dataclasses
import io
import json
import math

import numpy as np
import pytest
from helpers.inspect_shards import FLAGGED, PASSED, samples, set_meta, with_quality
from PIL import Image
from typer.testing import CliRunner

from vitonprep.cli import app
from vitonprep.derive.body25 import BODY25_NAMES, OpenPoseKeypoints
from vitonprep.errors import ConfigError
from vitonprep.inspect import Quality, SampleRecord, collect, contact_sheet, order_records, page_path, read_quality
from vitonprep.inspect.collect import built_thresholds
from vitonprep.inspect.overlays import PANELS, caption_lines, panels, sample_row
from vitonprep.quality import QualityConfig
from vitonprep.shards import write_manifest, write_shard

runner = CliRunner()


@pytest.fixture(scope="module")
def qshards(vitonhd_shards, tmp_path_factory):
    """(folder, keys): passed, unchecked, flagged (dataset order)."""
    out = tmp_path_factory.mktemp("inspect") / "shards"
    return out, with_quality(vitonhd_shards, out)


# ---------------------------------------------------------------------------------- the quality field, untrusted

def test_quality_field_absent_is_unchecked_and_a_sound_one_is_read():
    assert read_quality({}) == (None, None)
    q, problem = read_quality({"quality": FLAGGED})
    assert problem is None and q.flags == (("left_right", FLAGGED["flags"][0]["reason"]),
                                           ("agn_face", "agn_mask covers 40% of the face"))
    assert q.scores == {"left_right": 0.2, "agn_face": 0.4}
    assert read_quality({"quality": PASSED})[0].flags == ()


@pytest.mark.parametrize("bad", [
    [], "passed", None, {"scores": {}}, {"flags": "left_right"}, {"flags": [{"check": 1, "reason": "r"}]},
    {"flags": [{"check": "c"}]}, {"flags": [["c", "r"]]}, {"flags": [], "scores": []},
    {"flags": [], "scores": {"a": "0.5"}}, {"flags": [], "scores": {"a": True}},
    {"flags": [], "scores": {"a": math.nan}}, {"flags": [], "scores": {"a": math.inf}},
    {"flags": [], "scores": {"a": 10 ** 400}},  # json reads 401 digits as an int no float holds
])
def test_a_malformed_quality_field_is_a_problem_counted_as_unchecked(bad):
    q, problem = read_quality({"quality": bad})
    assert q is None and "quality" in problem and "unchecked" in problem


# --------------------------------------------------------------------------------------------------- the order

def _rec(i: int, nflags: int | None, score: float | None = None) -> SampleRecord:
    q = None if nflags is None else Quality(tuple((f"c{j}", "r") for j in range(nflags)),
                                            {} if score is None else {"s": score})
    return SampleRecord("00000.tar", i, f"k{i}", quality=q)


def test_flagged_first_most_flags_first_then_smallest_margin_then_the_rest():
    records = [_rec(0, None), _rec(1, 0), _rec(2, 1), _rec(3, 0, 0.9), _rec(4, 3), _rec(5, 0, 0.6), _rec(6, 1)]
    order = [r.key for r in order_records(records, margin=lambda check, score: score - 0.5)]
    assert order == ["k4", "k2", "k6", "k5", "k3", "k1", "k0"]
    # without margins: flag count, then dataset order, unchecked last
    assert [r.key for r in order_records(records)] == ["k4", "k2", "k6", "k1", "k3", "k5", "k0"]


# ------------------------------------------------------------------------------------------------ sheets, pages

def test_sheets_page_through_every_sample_flagged_first(qshards, tmp_path):
    shards, (passed, unchecked, flagged) = qshards
    s1 = contact_sheet(shards, tmp_path / "p1.png", n=2, page=1)
    s2 = contact_sheet(shards, tmp_path / "p2.png", n=2, page=2)
    assert s1.pages == [(tmp_path / "p1.png", [flagged, passed])]
    assert s2.pages == [(tmp_path / "p2.png", [unchecked])]
    assert (s1.flagged, s1.passed, s1.unchecked) == (1, 1, 1)
    assert dict(s1.flag_counts) == {"left_right": 1, "agn_face": 1} and not s1.problems
    one, two = Image.open(tmp_path / "p1.png"), Image.open(tmp_path / "p2.png")
    assert one.width >= len(PANELS) * 288 and one.height > 2 * 384 > two.height > 384
    with pytest.raises(ConfigError, match="page 3 does not exist"):
        contact_sheet(shards, tmp_path / "p3.png", n=2, page=3)
    every = contact_sheet(shards, tmp_path / "all.png", n=2, all_pages=True)
    assert [p for p, _ in every.pages] == [page_path(tmp_path / "all.png", 1), page_path(tmp_path / "all.png", 2)]
    assert page_path(tmp_path / "all.png", 2).name == "all_002.png"
    assert [k for _, keys in every.pages for k in keys] == [flagged, passed, unchecked]
    assert not (tmp_path / "all.png").exists()


def test_a_flagged_row_carries_its_reasons(qshards):
    shards, (passed, unchecked, flagged) = qshards
    by_key = {s.key: s for s in samples(shards)}
    recs = {k: SampleRecord("00000.tar", 0, k, quality=read_quality(json.loads(by_key[k].members["meta.json"]))[0])
            for k in (passed, flagged)}
    plain, marked = (sample_row(by_key[k], recs[k], 384) for k in (passed, flagged))
    assert marked.height > plain.height  # two flag lines (wrapped "check: reason") above the panels
    band = np.asarray(marked)[: marked.height - 384 - 4]
    reddish = (band[..., 0] > 200) & (band[..., 1] < 150)  # flag lines are drawn in a warm red
    assert reddish.sum() > 200


# ------------------------------------------------------------------------------------------------------ overlays

def test_overlays_blend_the_maps_on_the_photo(qshards):
    shards, _ = qshards
    sample = samples(shards)[0]
    pose_p, parse_p, dp_p, mask_p, agn_p, cloth_p = panels(sample, 384)
    assert all(p.shape == (384, 288, 3) for p in (pose_p, parse_p, dp_p, mask_p, agn_p, cloth_p))
    labels = np.asarray(Image.open(io.BytesIO(sample.members["parse.png"])).resize((288, 384), 0))
    diff = np.abs(parse_p.astype(int) - pose_p.astype(int)).sum(axis=2)
    person, background = labels > 0, labels == 0
    # the parse is blended where the person is and leaves the background as photographed (the skeleton aside)
    assert np.median(diff[person]) > 30 and np.median(diff[background]) == 0
    mask = np.asarray(Image.open(io.BytesIO(sample.members["agn_mask.png"])).resize((288, 384), 0)) > 0
    red = mask_p[..., 0].astype(int) - mask_p[..., 1:].mean(axis=2)
    assert np.median(red[mask]) > 60 > np.median(red[~mask])  # agn_mask tinted red, the rest untouched


def test_the_skeleton_tells_left_from_right(qshards):
    shards, _ = qshards
    sample = samples(shards)[0]
    pose = OpenPoseKeypoints.from_json_dict(json.loads(sample.members["pose.json"])).pose
    h, w = 384, 288
    drawn = panels(sample, h, (0,))[0].astype(int)
    sx, sy = w / 768, h / 1024

    def colour_at(a: str, b: str) -> np.ndarray:  # the middle of the bone a-b
        pa, pb = pose[BODY25_NAMES.index(a)], pose[BODY25_NAMES.index(b)]
        x, y = int((pa[0] + pb[0]) / 2 * sx), int((pa[1] + pb[1]) / 2 * sy)
        return drawn[y - 1:y + 2, x - 1:x + 2].reshape(-1, 3).mean(axis=0)

    right, left = colour_at("RShoulder", "RElbow"), colour_at("LShoulder", "LElbow")
    assert right[0] > right[2] + 100 and left[2] > left[0] + 100  # right warm (red), left cool (blue)


def test_a_pose_with_huge_coordinates_is_drawn_without_its_far_points(qshards):
    shards, _ = qshards
    sample = samples(shards)[0]
    sound = panels(sample, 256, (0,))[0]
    pose = json.loads(sample.members["pose.json"])
    kp = pose["people"][0]["pose_keypoints_2d"]
    wrist = next(3 * BODY25_NAMES.index(n) for n in ("RWrist", "LWrist", "RElbow", "LElbow")
                 if kp[3 * BODY25_NAMES.index(n) + 2] > 0.5)  # a point drawn in the sound sample
    kp[wrist: wrist + 2] = [1e30, -1e30]  # a float OpenCV cannot take as a pixel
    sample.members["pose.json"] = json.dumps(pose).encode()
    drawn = panels(sample, 256, (0,))[0]
    changed = np.abs(drawn.astype(int) - sound.astype(int)).sum(axis=2) > 0
    assert 0 < changed.mean() < 0.05  # that point and its bones left out, the rest of the skeleton drawn
    kp[wrist] = 10 ** 400  # an int too large for a float: the panel says the pose is unreadable
    sample.members["pose.json"] = json.dumps(pose).encode()
    note = panels(sample, 256, (0,))[0]
    assert note[..., 0].mean() > note[..., 1].mean() + 30


def test_a_missing_or_broken_member_is_a_labelled_panel(qshards):
    shards, _ = qshards
    sample = samples(shards)[0]
    del sample.members["parse.png"]
    sample.members["agn_mask.png"] = b"not a png"
    out = panels(sample, 256)
    for i in (1, 3):  # dark red note panels instead of an exception
        assert out[i][..., 0].mean() > out[i][..., 1].mean() + 30


# --------------------------------------------------------------------------------------------------------- CLI

def _flat(text: str) -> str:
    return "".join(text.split())


def test_cli_summary_pages_and_exit_codes(qshards, tmp_path):
    shards, (passed, unchecked, flagged) = qshards
    result = runner.invoke(app, ["inspect", str(shards), "--out", str(tmp_path / "s.png"), "--rows", "2", "--all"])
    assert result.exit_code == 0, result.output
    text = _flat(result.output)
    for word in ("left_right│1", "agn_face│1", "flagged│1", "passed│1", "unchecked│1", "s_001.png", "s_002.png",
                 f"s_001.png:{flagged},{passed}", f"s_002.png:{unchecked}"):
        assert word in text, (word, result.output)
    assert (tmp_path / "s_001.png").is_file() and (tmp_path / "s_002.png").is_file()
    result = runner.invoke(app, ["inspect", str(shards), "--out", str(tmp_path / "x.png"), "--page", "4", "-n", "1"])
    assert result.exit_code == 2 and "page4doesnotexist" in _flat(result.output), result.output


def test_cli_malformed_quality_is_a_problem_not_a_crash(vitonhd_shards, tmp_path):
    s = samples(vitonhd_shards)
    set_meta(s[1], quality={"flags": "everything", "scores": {"x": "high"}})
    shards = tmp_path / "shards"
    write_shard(shards, 0, s)
    write_manifest(shards, "bad-quality", {})
    result = runner.invoke(app, ["inspect", str(shards), "--out", str(tmp_path / "s.png")])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    text = _flat(result.output)
    assert result.exit_code == 1 and s[1].key in text and "quality.flags" in text and "unchecked│3" in text
    assert (tmp_path / "s.png").is_file()


def test_unflagged_samples_worst_scored_first_under_the_built_thresholds(vitonhd_shards, tmp_path):
    s = samples(vitonhd_shards)
    set_meta(s[0], quality={"flags": [], "scores": {"left_right": 1.0}})
    set_meta(s[1], quality={"flags": [], "scores": {"left_right": 0.8, "bogus_check": -5}})  # unknown: ignored
    shards = tmp_path / "shards"
    write_shard(shards, 0, s)
    write_manifest(shards, "t", {})
    records = collect(shards).records
    assert [r.key for r in records] == [s[1].key, s[0].key, s[2].key]
    assert (records[0].closest, round(records[0].margin, 3)) == ("left_right", round(0.05 / 0.75, 3))
    assert "closest: left_right, 7% from its threshold" in caption_lines(records[0], 200)[1][0]
    manifest = json.loads((shards / "manifest.json").read_text())
    manifest["vitonprep"]["pipeline"] = {"quality": {"enabled": True, "on_flag": "keep",
                                                     "min_left_right_agreement": 0.9}}
    (shards / "manifest.json").write_text(json.dumps(manifest))
    assert built_thresholds(shards).min_left_right_agreement == 0.9
    for bad in ({"quality": {"min_left_right_agreement": "high"}}, {"quality": ["x"]}, "pipeline"):
        manifest["vitonprep"]["pipeline"] = bad
        (shards / "manifest.json").write_text(json.dumps(manifest))
        assert built_thresholds(shards) == QualityConfig()  # untrusted: the defaults, never an error
    (shards / "manifest.json").write_text("{not json")
    assert built_thresholds(shards) == QualityConfig()


def _manifest(shards, **vitonprep) -> None:
    manifest = json.loads((shards / "manifest.json").read_text())
    manifest["vitonprep"].update(vitonprep)
    (shards / "manifest.json").write_text(json.dumps(manifest))  # json writes 10 ** 400 as its 401 digits


def test_an_annotated_copy_is_ordered_by_the_thresholds_of_its_annotation(vitonhd_shards, tmp_path):
    s = samples(vitonhd_shards)
    set_meta(s[0], quality={"flags": [], "scores": {"left_right": 0.8}})
    set_meta(s[1], quality={"flags": [], "scores": {"agn_face": 0.2}})
    shards = tmp_path / "shards"
    write_shard(shards, 0, s)
    write_manifest(shards, "t", {"pipeline": {"quality": {"enabled": True, "min_left_right_agreement": 0.5}}})
    # the build's thresholds: left_right 0.8 is 60% from 0.5, agn_face 0.2 is 20% from 0.25
    assert [r.key for r in collect(shards).records] == [s[1].key, s[0].key, s[2].key]
    # vitonprep quality --annotate keeps the input's pipeline section and records its own thresholds
    annotated = dataclasses.asdict(QualityConfig(min_left_right_agreement=0.78))
    _manifest(shards, quality_annotated={"from": "in", "config": annotated})
    assert built_thresholds(shards).min_left_right_agreement == 0.78
    assert [r.key for r in collect(shards).records] == [s[0].key, s[1].key, s[2].key]  # 0.8 is 3% from 0.78
    for bad in ({"config": {**annotated, "max_agn_face": "high"}}, {"config": []}, "annotated"):
        _manifest(shards, quality_annotated=bad)  # present but malformed: the defaults, not the build's
        assert built_thresholds(shards) == QualityConfig()


@pytest.mark.parametrize("setting", ["max_crossing_limbs", "max_persons", "min_left_right_agreement"])
def test_a_huge_threshold_in_the_manifest_falls_back_to_the_defaults(vitonhd_shards, tmp_path, setting):
    s = samples(vitonhd_shards)
    for sample in s:
        set_meta(sample, quality={"flags": [], "scores": {"crossing_limbs": 0, "two_people": 1, "left_right": 0.9}})
    shards = tmp_path / "shards"
    write_shard(shards, 0, s)
    huge = {setting: 10 ** 400}  # json writes its 401 digits, and reads them back as an int no float holds
    for info in ({"pipeline": {"quality": huge}}, {"quality_annotated": {"config": huge}}):
        write_manifest(shards, "t", info)
        assert built_thresholds(shards) == QualityConfig()
        assert [r.closest for r in collect(shards).records] == ["left_right"] * 3  # ranked by the defaults
        result = runner.invoke(app, ["inspect", str(shards), "--out", str(tmp_path / "s.png"), "-n", "1"])
        assert result.exit_code == 0, result.output
    (shards / "manifest.json").write_text("[" * 100_000)  # nested deeper than Python's json parser goes
    assert built_thresholds(shards) == QualityConfig()
