"""thresholds: every check names its QualityConfig bound and direction, and margin's sign is check_sample's flag."""

from __future__ import annotations

import dataclasses

import pytest

from vitonprep.quality import CHECKS, GarmentFaces, QualityConfig, check_sample, decode_sample
from vitonprep.quality.thresholds import THRESHOLDS, margin, worst_margin
from vitonprep.shards import iter_tar_samples, list_shards


@pytest.fixture(scope="module")
def official(vitonhd_shards) -> list[dict]:
    """data/vitonhd-official converted: real photos with the official pose, parse and masks."""
    return [decode_sample(s.members, s.key) for tar in list_shards(vitonhd_shards) for s in iter_tar_samples(tar)]


@pytest.fixture(scope="module")
def faces():
    detector = GarmentFaces()
    yield detector
    detector.close()


def test_every_check_has_a_threshold():
    assert set(THRESHOLDS) == set(CHECKS)
    fields = {f.name: f for f in dataclasses.fields(QualityConfig)}
    for check, t in THRESHOLDS.items():
        assert t.field in fields, check
        assert t.field.startswith(t.direction + "_"), (check, t)  # min_* bounds from below, max_* from above


def _moved(config: QualityConfig, field: str, value: float) -> QualityConfig:
    default = getattr(QualityConfig, field)
    return dataclasses.replace(config, **{field: type(default)(value) if isinstance(default, int) else value})


def test_margin_sign_is_the_flag(official, faces):
    """On real samples, each check's bound put just past its own score flags it (negative margin) and put just
    short of it passes it (positive margin); the default config agrees too."""
    cfg = QualityConfig(person_models=True)
    seen = set()
    for d in official:
        rep = check_sample(d, cfg, faces)
        flagged = {f.check for f in rep.flags}
        for check, score in rep.scores.items():
            assert (margin(check, score, cfg) < 0) == (check in flagged), (check, score)
        for check, score in rep.scores.items():
            t = THRESHOLDS[check]
            step = 1 if isinstance(getattr(cfg, t.field), int) else 1e-3
            fail_at = score + step if t.direction == "min" else score - step
            pass_at = score - step if t.direction == "min" else score + step
            for bound, should_flag in ((fail_at, True), (pass_at, False)):
                moved = _moved(cfg, t.field, bound)
                got = check in {f.check for f in check_sample(d, moved, faces).flags}
                assert got == should_flag, (check, score, bound)
                assert (margin(check, score, moved) < 0) == should_flag, (check, score, bound)
            seen.add(check)
    assert {"orientation", "left_right", "arm_chain", "gt_outside_agn", "cloth_mask_fit", "garment_face",
            "parse_person", "two_people"} <= seen


def test_inclusive_bound_flags_on_the_bound():
    cfg = QualityConfig()
    assert margin("garment_face", cfg.max_garment_face, cfg) < 0
    assert margin("left_right", cfg.min_left_right_agreement, cfg) == 0  # exactly on a min bound passes
    # counts are measured from half a step past the bound, in the bound's size or (a zero bound) in one count
    assert margin("crossing_limbs", 0.0, cfg) == 0.5 and margin("crossing_limbs", 1.0, cfg) == -0.5
    assert margin("two_people", 1.0, cfg) == 0.5 and margin("two_people", 2.0, cfg) == -0.5


def test_worst_margin_untrusted_values(official, faces):
    cfg = QualityConfig()
    rep = check_sample(official[0], cfg, faces).to_dict()
    worst = worst_margin(rep, cfg)
    assert worst == min(margin(k, v, cfg) for k, v in rep["scores"].items())
    assert worst_margin({"flags": [], "scores": {**rep["scores"], "crossing_limbs": 2}}, cfg) == -1.5
    for bad in (None, [], "x", {"flags": []}, {"scores": []}, {"scores": {}},
                {"scores": {"unknown_check": 0.0, "orientation": "high", "left_right": True,
                            "bone_length": float("nan"), "agn_body": None, "hem_edge": 10 ** 400}}):
        assert worst_margin(bad, cfg) is None, bad
