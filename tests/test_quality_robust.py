"""Quality checks on untrusted members of shapes validate lets through or no check foresaw (review findings):
every check answers or says it could not judge the sample; none raises out of ``check_sample``."""

from __future__ import annotations

import copy
from typing import Any, Callable

import numpy as np
import pytest

from vitonprep.quality import QualityConfig, check_sample, check_shards, skeleton
from vitonprep.quality import shards as quality_shards
from vitonprep.quality.shards import annotate_shards
from vitonprep.shards import iter_tar_samples, list_shards
from vitonprep.validate import sample_quality, validate_shards

_UNJUDGED = "could not be judged"


def _unjudged(d: dict, faces) -> dict[str, str]:
    rep = check_sample(d, QualityConfig(), faces)
    return {f.check: f.reason for f in rep.flags if f.reason.startswith(_UNJUDGED)}


def _set_points(d: dict, field: str, x: float, y: float, conf: float) -> dict:
    d = {**d, "pose": copy.deepcopy(d["pose"])}
    for person in d["pose"]["people"]:
        k = person[field]
        for i in range(0, len(k), 3):
            k[i], k[i + 1], k[i + 2] = x, y, conf
    return d


def test_nan_body_points_with_confidence_are_absent_not_a_crash(official, faces):
    # validate now reports such points (tests/test_validate.py); the checks must still not raise on them
    for d in official:
        odd = _set_points(d, "pose_keypoints_2d", float("nan"), float("inf"), 1.0)
        assert _unjudged(odd, faces) == {}, d["__key__"]


@pytest.mark.parametrize("field", ["pose_keypoints_2d", "face_keypoints_2d"])
def test_far_off_points_are_absent_not_a_crash(official, faces, field):
    # 1e30 is finite: before, hair_far handed a head point to cv2.circle, which cannot take such an integer
    for d in official:
        assert _unjudged(_set_points(d, field, 1e30, -1e30, 1.0), faces) == {}, d["__key__"]


@pytest.mark.parametrize("side", [1, 3])
def test_a_garment_photo_of_a_few_pixels_is_judged(official, faces, side):
    d = official[0]
    cloth = np.full((side, side, 3), 200, np.uint8)
    mask = np.ones((side, side), bool)
    rep = check_sample({**d, "cloth": cloth, "cloth_mask": mask}, QualityConfig(), faces)
    # cv2.resize to 0 px raised in cloth_mask_fit's photo_foreground (side // 4); too small to judge is no score
    assert not any(f.reason.startswith(_UNJUDGED) for f in rep.flags), rep.flags


def test_a_check_that_raises_flags_the_sample_and_the_others_still_run(official, faces, monkeypatch, caplog):
    def broken(*_args):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(skeleton, "orientation", broken)
    rep = check_sample(official[0], QualityConfig(), faces)
    assert [f.reason for f in rep.flags if f.check == "orientation"] == [
        "could not be judged: RuntimeError: boom"]
    assert not rep.passed and "orientation" not in rep.to_dict()["scores"]
    assert {"left_right", "bone_length", "hem_edge", "cloth_mask_fit"} <= set(rep.to_dict()["scores"])
    assert "quality check orientation could not judge the sample: RuntimeError: boom" in caplog.text


def _raising_on(first_key: str, real: Callable[..., Any]) -> Callable[..., Any]:
    def check(decoded: dict, *args: Any) -> Any:
        if decoded["meta"]["key"] == first_key:
            raise MemoryError("out of memory on this sample")
        return real(decoded, *args)
    return check


def test_check_shards_lists_a_sample_it_cannot_check_and_goes_on(vitonhd_shards, monkeypatch):
    keys = sorted(s.key for tar in list_shards(vitonhd_shards) for s in iter_tar_samples(tar))
    monkeypatch.setattr(quality_shards, "check_sample", _raising_on(keys[0], check_sample))
    result = check_shards(vitonhd_shards, QualityConfig(detect_garment_faces=False))
    assert sorted(k for _, k, _ in result.results) == keys[1:]
    assert [(k, r) for _, k, r in result.undecodable] == [(keys[0], "could not be checked: out of memory on this "
                                                                    "sample")]


def test_annotate_writes_a_sample_it_cannot_check_as_unchecked(vitonhd_shards, monkeypatch, tmp_path):
    keys = sorted(s.key for tar in list_shards(vitonhd_shards) for s in iter_tar_samples(tar))
    monkeypatch.setattr(quality_shards, "check_sample", _raising_on(keys[0], check_sample))
    result = annotate_shards(vitonhd_shards, tmp_path / "out", QualityConfig(detect_garment_faces=False))
    assert [k for _, k, _ in result.undecodable] == [keys[0]] and len(result.results) == len(keys) - 1
    states = {s.key: sample_quality(s.members).state for tar in list_shards(tmp_path / "out")
              for s in iter_tar_samples(tar)}
    assert states[keys[0]] == "unchecked" and set(states) == set(keys)
    assert all(states[k] in ("passed", "flagged") for k in keys[1:])
    assert validate_shards(tmp_path / "out").ok
