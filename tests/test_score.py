"""`vitonprep score`: the fidelity targets of the default pipeline on the official VITON-HD sample.

3 persons and 6 garments: a smoke signal, not a benchmark. Targets from the build issue: PCK@0.1 >= 0.9,
mIoU (13 HR-VITON groups) >= 0.70, cloth-mask IoU >= 0.95.
"""

import json
import re
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from vitonprep.cli import app
from vitonprep.derive.body25 import OpenPoseKeypoints
from vitonprep.score import JOINT_GROUPS, hand_pck, pck, pck_groups


def test_pck_counts_only_visible_joints_and_misses():
    truth = np.zeros((25, 3), np.float32)
    truth[1] = (100, 100, 1)
    truth[8] = (100, 300, 1)  # torso 200 px -> threshold 20 px
    truth[2] = (80, 110, 1)
    pred = truth.copy()
    pred[2, :2] += (15, 0)  # within 20 px
    assert pck(pred, truth) == (3, 3)
    pred[2, :2] += (10, 0)  # 25 px away
    assert pck(pred, truth) == (2, 3)
    pred[8] = 0  # missed joint counts as wrong
    assert pck(pred, truth) == (1, 3)


def test_score_meets_the_targets(data_dir, tmp_path):
    out = tmp_path / "score.json"
    result = CliRunner().invoke(app, ["score", str(data_dir / "vitonhd-official"), "--report", str(out)])
    assert result.exit_code == 0, result.output
    rep = json.loads(out.read_text())
    assert set(rep["pck@0.1_torso"]["per_image"]) == {"00891_00", "03615_00", "07445_00"}
    assert rep["pck@0.1_torso"]["overall"] >= 0.9, rep
    assert rep["miou_13_groups"]["mean"] >= 0.70, rep
    assert len(rep["cloth_mask_iou"]["per_image"]) == 6
    assert rep["cloth_mask_iou"]["mean"] >= 0.95, rep


def test_pck_per_group_adds_up_and_counts_misses():
    truth = np.zeros((25, 3), np.float32)
    truth[1] = (100, 100, 1)
    truth[8] = (100, 300, 1)  # torso 200 px -> 20 px
    truth[[9, 12]] = ((80, 300, 1), (120, 300, 1))
    truth[[3, 10]] = ((60, 200, 1), (80, 400, 1))
    pred = truth.copy()
    pred[9, :2] += (0, 25)  # a hip 25 px off
    pred[10] = 0  # a knee we miss
    groups = pck_groups(pred, truth)
    assert groups["head"] == (1, 1) and groups["arms"] == (1, 1)
    assert groups["hips"] == (2, 3) and groups["legs"] == (0, 1) and groups["feet"] == (0, 0)
    assert tuple(map(sum, zip(*groups.values(), strict=True))) == pck(pred, truth)
    assert set(groups) == set(JOINT_GROUPS)


def test_hand_pck_uses_the_hand_size():
    truth = OpenPoseKeypoints(pose=np.zeros((25, 3), np.float32))
    hand = np.zeros((21, 3), np.float32)
    hand[:, 0] = np.linspace(100, 200, 21)  # a 100 px hand -> 20 px at 0.2
    hand[:, 1] = 300
    hand[:, 2] = 0.9
    truth = OpenPoseKeypoints(pose=truth.pose, hand_left=hand)
    ours = hand.copy()
    ours[:5, 1] += 15  # within 20 px
    ours[5:8, 1] += 25  # outside
    ours[8] = 0  # missed
    pred = OpenPoseKeypoints(pose=truth.pose, hand_left=ours)
    assert hand_pck(pred, truth) == (17, 21)
    # no official right hand: it does not count, whatever we found
    pred2 = OpenPoseKeypoints(pose=truth.pose, hand_left=ours, hand_right=hand)
    assert hand_pck(pred2, truth) == (17, 21)


def test_score_json_on_stdout(data_dir):
    result = CliRunner().invoke(app, ["score", str(data_dir / "vitonhd-official"), "--json"])
    assert result.exit_code == 0, result.output
    rep = json.loads(result.stdout)  # the tables went to stderr
    groups = rep["pck@0.1_torso"]["per_group"]
    assert list(groups) == [*JOINT_GROUPS, "hands"]
    assert sum(g["total"] for k, g in groups.items() if k != "hands") == 48
    assert sum(g["correct"] for k, g in groups.items() if k != "hands") / 48 == rep["pck@0.1_torso"]["overall"]
    assert rep["pck@0.1_torso"]["overall"] >= 0.958, groups  # no worse than before the learned mapping
    assert groups["hands"]["total"] == 5 * 21 and groups["hands"]["pck"] >= 0.9
    assert "PCK per joint group" in result.stderr
    # the summary line rounds like the tables (it printed 0.8223735340995139)
    assert re.search(r"mean mIoU \d\.\d{3}; cloth-mask IoU mean \d\.\d{3}\n", result.stderr), result.stderr


def test_score_json_refuses_a_folder_that_is_not_vitonhd(tmp_path):
    result = CliRunner().invoke(app, ["score", str(tmp_path), "--json"])
    assert result.exit_code == 2
    assert result.stdout == "" and "not a VITON-HD folder" in result.stderr


def test_score_json_without_official_poses_is_valid_json(data_dir, tmp_path):
    """No openpose JSON to score against: the overall PCK is null, not NaN (which no strict JSON parser reads)."""
    root = tmp_path / "vitonhd"
    (root / "image").mkdir(parents=True)
    shutil.copy(data_dir / "vitonhd-official" / "image" / "00891_00.jpg", root / "image")
    result = CliRunner().invoke(app, ["score", str(root), "--json"])
    assert result.exit_code == 0, result.output
    rep = json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"{c} in the JSON report"))
    assert rep["pck@0.1_torso"]["overall"] is None
    assert "PCK overall -;" in result.stderr
