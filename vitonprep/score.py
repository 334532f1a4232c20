"""`vitonprep score`: fidelity of the build pipeline's back-ends against official VITON-HD annotations.

Runs the pipeline's pose, parsing and cloth-mask back-ends on the photos of a VITON-HD folder (2021 or v3
names) and compares with the shipped annotations:
- PCK@0.1 of torso size for BODY_25 joints (torso = official Neck-MidHip distance; joints visible in the
  official JSON; a joint the back-end misses counts as wrong), overall and per joint group (``JOINT_GROUPS``);
- hands PCK@0.2 of hand size: each official hand point (confidence > 0) is correct when ours lies within 0.2 x
  the larger side of the official hand's keypoint box (docs/pose.md, "Scores");
- mIoU over HR-VITON's 13 label groups (per-image mean over groups present in either map);
- cloth-mask IoU against ``cloth-mask/`` (thresholded at 128).
On the bundled 3-person sample these are smoke signals, not benchmarks.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from vitonprep.assemble import read_mask_any, read_rgb
from vitonprep.backends.parsing_heuristic import parsing_miou
from vitonprep.config import PipelineConfig
from vitonprep.convert.vitonhd import _file, find_splits
from vitonprep.derive.body25 import OpenPoseKeypoints
from vitonprep.derive.labels import palette_image_to_labels
from vitonprep.errors import ConfigError
from vitonprep.raw import RawItem
from vitonprep.stages import ClothMaskStage, ParsingStage, PoseStage, SampleContext

logger = logging.getLogger(__name__)


#: BODY_25 joint groups of the per-group PCK (docs/pose.md, "Scores").
JOINT_GROUPS: dict[str, tuple[int, ...]] = {
    "head": (0, 1, 15, 16, 17, 18),  # nose, neck, eyes, ears
    "arms": (2, 3, 4, 5, 6, 7),  # shoulders, elbows, wrists
    "hips": (8, 9, 12),
    "legs": (10, 11, 13, 14),  # knees, ankles
    "feet": (19, 20, 21, 22, 23, 24),
}
HAND_ALPHA = 0.2


@dataclass
class ScoreReport:
    pck: dict[str, float] = field(default_factory=dict)  # person id -> PCK
    pck_counts: dict[str, tuple[int, int]] = field(default_factory=dict)  # person id -> (correct, total)
    group_counts: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)  # id -> group -> counts
    miou: dict[str, float] = field(default_factory=dict)
    group_iou: dict[int, list[float]] = field(default_factory=dict)
    cloth_iou: dict[str, float] = field(default_factory=dict)

    @property
    def pck_overall(self) -> float | None:
        """None when no official pose was scored (NaN would make the JSON report invalid)."""
        c = sum(a for a, _ in self.pck_counts.values())
        t = sum(b for _, b in self.pck_counts.values())
        return c / t if t else None

    def group_totals(self) -> dict[str, tuple[int, int]]:
        """group (JOINT_GROUPS and "hands") -> (correct, total) summed over the images."""
        tot: dict[str, tuple[int, int]] = {}
        for groups in self.group_counts.values():
            for g, (c, n) in groups.items():
                a, b = tot.get(g, (0, 0))
                tot[g] = (a + c, b + n)
        return tot

    def to_dict(self) -> dict:
        groups = {g: {"pck": c / n if n else None, "correct": c, "total": n}
                  for g, (c, n) in self.group_totals().items()}
        return {
            "pck@0.1_torso": {"overall": self.pck_overall, "per_image": self.pck, "per_group": groups},
            "miou_13_groups": {"mean": float(np.mean(list(self.miou.values()))) if self.miou else None,
                               "per_image": self.miou,
                               "per_group": {str(g): float(np.mean(v)) for g, v in sorted(self.group_iou.items())}},
            "cloth_mask_iou": {"mean": float(np.mean(list(self.cloth_iou.values()))) if self.cloth_iou else None,
                               "per_image": self.cloth_iou},
        }


def pck(pred25: np.ndarray, truth25: np.ndarray, alpha: float = 0.1) -> tuple[int, int]:
    """(correct, total) over joints visible in ``truth25``; threshold alpha x torso (Neck-MidHip) length."""
    if truth25[1, 2] <= 0 or truth25[8, 2] <= 0:
        raise ValueError("official keypoints lack Neck or MidHip: no torso size")
    torso = float(np.linalg.norm(truth25[1, :2] - truth25[8, :2]))
    vis = truth25[:, 2] > 0
    found = pred25[:, 2] > 0
    dist = np.linalg.norm(pred25[:, :2] - truth25[:, :2], axis=1)
    ok = vis & found & (dist <= alpha * torso)
    return int(ok.sum()), int(vis.sum())


def pck_groups(pred25: np.ndarray, truth25: np.ndarray, alpha: float = 0.1) -> dict[str, tuple[int, int]]:
    """``pck`` per joint group of ``JOINT_GROUPS``: group -> (correct, total); the groups add up to ``pck``."""
    if truth25[1, 2] <= 0 or truth25[8, 2] <= 0:
        raise ValueError("official keypoints lack Neck or MidHip: no torso size")
    torso = float(np.linalg.norm(truth25[1, :2] - truth25[8, :2]))
    vis = truth25[:, 2] > 0
    ok = vis & (pred25[:, 2] > 0) & (np.linalg.norm(pred25[:, :2] - truth25[:, :2], axis=1) <= alpha * torso)
    return {g: (int(ok[list(j)].sum()), int(vis[list(j)].sum())) for g, j in JOINT_GROUPS.items()}


def hand_pck(pred: OpenPoseKeypoints, truth: OpenPoseKeypoints, alpha: float = HAND_ALPHA) -> tuple[int, int]:
    """(correct, total) over the official hand points with confidence > 0, both hands; threshold alpha x the
    larger side of the official hand's keypoint box; a point we miss counts as wrong."""
    c = n = 0
    for ours, theirs in ((pred.hand_left, truth.hand_left), (pred.hand_right, truth.hand_right)):
        vis = theirs[:, 2] > 0
        if not vis.any():
            continue
        box = theirs[vis, :2]
        size = float((box.max(0) - box.min(0)).max())
        hit = vis & (ours[:, 2] > 0) & (np.linalg.norm(ours[:, :2] - theirs[:, :2], axis=1) <= alpha * size)
        c, n = c + int(hit.sum()), n + int(vis.sum())
    return c, n


def score_vitonhd(root: Path, cfg: PipelineConfig) -> ScoreReport:
    splits = find_splits(root, "test")
    if not splits:
        raise ConfigError(f"{root} is not a VITON-HD folder (no image/)")
    pose_stage = PoseStage(cfg.stages.pose, cfg.weights_dir)
    parse_stage = ParsingStage(cfg.stages.parsing, cfg.category, cfg.weights_dir)
    cloth_stage = ClothMaskStage(cfg.stages.cloth_mask, cfg.weights_dir)
    pose_stage.setup()
    report = ScoreReport()
    try:
        for _split, sdir in sorted(splits.items()):
            for img_path in sorted((sdir / "image").glob("*.jpg")):
                pid = img_path.stem
                rgb = read_rgb(img_path.read_bytes(), str(img_path))
                ctx = SampleContext(RawItem(pid, str(img_path), None, "person_only", str(root)), image=rgb)
                pose_stage(ctx)
                json_path = _file(sdir, "pose", pid)
                if json_path is not None:
                    truth_kp = OpenPoseKeypoints.from_json_dict(json.loads(json_path.read_text()))
                    truth = truth_kp.pose
                    report.pck_counts[pid] = pck(ctx.pose.keypoints.pose, truth)
                    report.group_counts[pid] = {**pck_groups(ctx.pose.keypoints.pose, truth),
                                                "hands": hand_pck(ctx.pose.keypoints, truth_kp)}
                    c, t = report.pck_counts[pid]
                    report.pck[pid] = c / t
                parse_path = _file(sdir, "parse", pid)
                if parse_path is not None:
                    parse_stage(ctx)
                    truth_parse = palette_image_to_labels(Image.open(parse_path))
                    m, groups = parsing_miou(ctx.parse, truth_parse)
                    report.miou[pid] = m
                    for g, v in groups.items():
                        report.group_iou.setdefault(g, []).append(v)
            mask_dir = sdir / "cloth-mask" if (sdir / "cloth-mask").is_dir() else None
            for cloth_path in sorted((sdir / "cloth").glob("*.jpg")) if mask_dir else []:
                mpath = mask_dir / cloth_path.name
                if not mpath.is_file():
                    continue
                ctx = SampleContext(RawItem(cloth_path.stem, "", str(cloth_path), "person_only", str(root)),
                                    cloth=read_rgb(cloth_path.read_bytes(), str(cloth_path)))
                cloth_stage(ctx)
                truth = read_mask_any(mpath.read_bytes(), str(mpath))
                pred = ctx.cloth_mask
                report.cloth_iou[cloth_path.stem] = float((pred & truth).sum() / max((pred | truth).sum(), 1))
    finally:
        pose_stage.close()
    return report
