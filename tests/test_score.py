"""`vitonprep score`: the fidelity targets of the default pipeline on the official VITON-HD sample.

3 persons and 6 garments: a smoke signal, not a benchmark. Targets from the build issue: PCK@0.1 >= 0.9,
mIoU (13 HR-VITON groups) >= 0.70, cloth-mask IoU >= 0.95.
"""

import json

import numpy as np
from typer.testing import CliRunner

from vitonprep.cli import app
from vitonprep.score import pck


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
