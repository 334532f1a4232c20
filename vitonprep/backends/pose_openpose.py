"""OpenPose body (COCO-18, CMU's caffe model as converted by pytorch-openpose) in plain PyTorch, output as BODY_25.

Reads ``body_pose_model.pth`` (pytorch-openpose / ControlNet's annotator; IDM-VTON, OOTDiffusion and DressCode
keypoints come from it): a flat state dict whose keys are the caffe layer names (``conv1_1.weight``,
``Mconv7_stage6_L2.bias``...), loaded into the network of `vitonprep.backends.pose_openpose_net` (``body_net`` and
``load_body_net`` are re-exported from there for the modules and tests that import them from here).

Inference is pytorch-openpose's ``Body.__call__`` (Hzzone/pytorch-openpose ``src/body.py``): BGR image, scales
``scale_search`` x ``boxsize`` / image height (single scale 0.5, as the annotator), bicubic resize, right/bottom
padding to the stride with 128, input ``x / 256 - 0.5``; heat maps and PAFs upsampled bicubically back to the image;
peaks = 4-neighbour maxima above ``thre1`` of the Gaussian-smoothed (sigma 3) heat map, scored on the raw map;
limbs scored along 10 samples of the PAF (``thre2``, 80 % rule, distance prior) and assembled greedily into
persons; persons with fewer than 4 parts or a mean score under 0.4 are dropped. The multi-scale accumulation
``heatmap_avg += heatmap_avg + heatmap / n`` is kept as written (it only matters with several scales).

The main person is the one with the most parts (ties: highest total score). COCO-18 becomes BODY_25 with
`coco18_to_body25` (MidHip synthesised, feet zero); joint confidence is the heat-map peak value. No face or hands.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from vitonprep.backends.devices import ModelOnDevice, check_device, resolve_device

# body_net and load_body_net are re-exported: other modules' tests import them from here
from vitonprep.backends.pose_openpose_net import body_net, load_body_net  # noqa: F401
from vitonprep.backends.protocols import Backend
from vitonprep.backends.results import PoseResult
from vitonprep.derive.body25 import OpenPoseKeypoints, coco18_to_body25
from vitonprep.errors import InputError, NoPersonError
from vitonprep.weights import WeightSpec, find_weights, register_weights

logger = logging.getLogger(__name__)

NAME = "pose-openpose-body"
APPROXIMATE = False

_WEIGHTS_LICENCE = "CMU OpenPose licence: academic / non-profit, non-commercial research only"
WEIGHTS_BODY = register_weights(WeightSpec(
    "openpose-body", "body_pose_model.pth",
    "https://github.com/Hzzone/pytorch-openpose#download-the-models (also "
    "https://huggingface.co/lllyasviel/Annotators/blob/main/body_pose_model.pth)",
    _WEIGHTS_LICENCE))

#: limbs as 1-based COCO-18 joint pairs and their PAF channel pairs (offset by 19 in the original's numbering)
LIMB_SEQ = ((2, 3), (2, 6), (3, 4), (4, 5), (6, 7), (7, 8), (2, 9), (9, 10), (10, 11), (2, 12), (12, 13),
            (13, 14), (2, 1), (1, 15), (15, 17), (1, 16), (16, 18), (3, 17), (6, 18))
MAP_IDX = ((31, 32), (39, 40), (33, 34), (35, 36), (41, 42), (43, 44), (19, 20), (21, 22), (23, 24), (25, 26),
           (27, 28), (29, 30), (47, 48), (49, 50), (53, 54), (51, 52), (55, 56), (37, 38), (45, 46))


# ---------------------------------------------------------------- inference

def _pad_right_down(img: np.ndarray, stride: int, pad_value: int) -> tuple[np.ndarray, tuple[int, int]]:
    h, w = img.shape[:2]
    pad_down = 0 if h % stride == 0 else stride - h % stride
    pad_right = 0 if w % stride == 0 else stride - w % stride
    out = np.full((h + pad_down, w + pad_right, img.shape[2]), pad_value, img.dtype)
    out[:h, :w] = img
    return out, (pad_down, pad_right)


def find_peaks(heatmap_avg: np.ndarray, thre1: float) -> list[list[tuple]]:
    """Per part (18), [(x, y, score, id)] of the 4-neighbour maxima of the smoothed map above ``thre1``."""
    all_peaks: list[list[tuple]] = []
    counter = 0
    for part in range(18):
        raw = heatmap_avg[:, :, part]
        smooth = gaussian_filter(raw, sigma=3)
        # neighbours with zero outside the map (a border pixel only has to beat its inner neighbours and 0)
        up = np.zeros_like(smooth)
        up[1:, :] = smooth[:-1, :]
        down = np.zeros_like(smooth)
        down[:-1, :] = smooth[1:, :]
        left = np.zeros_like(smooth)
        left[:, 1:] = smooth[:, :-1]
        right = np.zeros_like(smooth)
        right[:, :-1] = smooth[:, 1:]
        binary = (smooth >= up) & (smooth >= down) & (smooth >= left) & (smooth >= right) & (smooth > thre1)
        ys, xs = np.nonzero(binary)
        peaks = [(xs[i], ys[i], raw[ys[i], xs[i]], counter + i) for i in range(len(xs))]
        all_peaks.append(peaks)
        counter += len(peaks)
    return all_peaks


def connect_limbs(all_peaks: list[list[tuple]], paf_avg: np.ndarray, image_height: int, thre2: float,
                  mid_num: int = 10) -> tuple[list[Any], list[int]]:
    """Per limb, the greedy one-to-one connections [idA, idB, score, i, j] ranked by the PAF line integral."""
    connection_all: list[Any] = []
    special_k: list[int] = []
    for k, (a, b) in enumerate(LIMB_SEQ):
        score_mid = paf_avg[:, :, [MAP_IDX[k][0] - 19, MAP_IDX[k][1] - 19]]
        cand_a, cand_b = all_peaks[a - 1], all_peaks[b - 1]
        if not cand_a or not cand_b:
            special_k.append(k)
            connection_all.append([])
            continue
        candidates = []
        for i, pa in enumerate(cand_a):
            for j, pb in enumerate(cand_b):
                vec = np.subtract(pb[:2], pa[:2])
                norm = max(0.001, math.sqrt(vec[0] * vec[0] + vec[1] * vec[1]))
                vec = np.divide(vec, norm)
                xs = np.linspace(pa[0], pb[0], num=mid_num)
                ys = np.linspace(pa[1], pb[1], num=mid_num)
                # Python's round (half to even) on each sample, as the original
                rows = [int(round(y)) for y in ys]
                cols = [int(round(x)) for x in xs]
                vec_x = np.array([score_mid[r, c, 0] for r, c in zip(rows, cols, strict=True)])
                vec_y = np.array([score_mid[r, c, 1] for r, c in zip(rows, cols, strict=True)])
                score_midpts = np.multiply(vec_x, vec[0]) + np.multiply(vec_y, vec[1])
                # builtin sum (sequential), not np.sum (pairwise): the same float result as the original
                score = sum(score_midpts) / len(score_midpts) + min(0.5 * image_height / norm - 1, 0)
                crit1 = len(np.nonzero(score_midpts > thre2)[0]) > 0.8 * len(score_midpts)
                if crit1 and score > 0:
                    candidates.append([i, j, score, score + pa[2] + pb[2]])
        candidates = sorted(candidates, key=lambda c: c[2], reverse=True)
        connection = np.zeros((0, 5))
        for i, j, s, _ in candidates:
            if i not in connection[:, 3] and j not in connection[:, 4]:
                connection = np.vstack([connection, [cand_a[i][3], cand_b[j][3], s, i, j]])
                if len(connection) >= min(len(cand_a), len(cand_b)):
                    break
        connection_all.append(connection)
    return connection_all, special_k


def assemble_persons(all_peaks: list[list[tuple]], connection_all: list[Any], special_k: list[int]
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(candidate (N, 4) x, y, score, id; subset (M, 20): 18 candidate ids or -1, total score, part count)."""
    subset = -1 * np.ones((0, 20))
    candidate = np.array([p for peaks in all_peaks for p in peaks])
    for k in range(len(MAP_IDX)):
        if k in special_k:
            continue
        part_as = connection_all[k][:, 0]
        part_bs = connection_all[k][:, 1]
        index_a, index_b = np.array(LIMB_SEQ[k]) - 1
        for i in range(len(connection_all[k])):
            found = 0
            subset_idx = [-1, -1]
            for j in range(len(subset)):
                if subset[j][index_a] == part_as[i] or subset[j][index_b] == part_bs[i]:
                    subset_idx[found] = j
                    found += 1
            if found == 1:
                j = subset_idx[0]
                if subset[j][index_b] != part_bs[i]:
                    subset[j][index_b] = part_bs[i]
                    subset[j][-1] += 1
                    subset[j][-2] += candidate[part_bs[i].astype(int), 2] + connection_all[k][i][2]
            elif found == 2:
                j1, j2 = subset_idx
                membership = ((subset[j1] >= 0).astype(int) + (subset[j2] >= 0).astype(int))[:-2]
                if len(np.nonzero(membership == 2)[0]) == 0:  # disjoint: merge the two persons
                    subset[j1][:-2] += subset[j2][:-2] + 1
                    subset[j1][-2:] += subset[j2][-2:]
                    subset[j1][-2] += connection_all[k][i][2]
                    subset = np.delete(subset, j2, 0)
                else:
                    subset[j1][index_b] = part_bs[i]
                    subset[j1][-1] += 1
                    subset[j1][-2] += candidate[part_bs[i].astype(int), 2] + connection_all[k][i][2]
            elif not found and k < 17:
                row = -1 * np.ones(20)
                row[index_a] = part_as[i]
                row[index_b] = part_bs[i]
                row[-1] = 2
                row[-2] = sum(candidate[connection_all[k][i, :2].astype(int), 2]) + connection_all[k][i][2]
                subset = np.vstack([subset, row])
    keep = [i for i in range(len(subset)) if not (subset[i][-1] < 4 or subset[i][-2] / subset[i][-1] < 0.4)]
    return candidate, subset[keep]


@dataclass(frozen=True)
class OpenPoseConfig:
    """``pose-openpose-body`` params (defaults: pytorch-openpose / the ControlNet annotator IDM-VTON uses)."""

    weights: str = ""  # body_pose_model.pth, or a folder holding it
    scale_search: tuple[float, ...] = (0.5,)
    boxsize: int = 368
    stride: int = 8
    pad_value: int = 128
    thre1: float = 0.1
    thre2: float = 0.05
    dtype: str = "float32"  # float64 only for parity tests
    device: str = "auto"  # auto (CUDA when visible, resolved in setup()) | cpu | cuda | cuda:N

    def __post_init__(self) -> None:
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")
        check_device(self.device)


class OpenPoseBody(ModelOnDevice, Backend):
    """The ``pose-openpose-body`` back-end: COCO-18 body pose; ``__call__(rgb) -> PoseResult`` (BODY_25 of the main
    person), ``detect(bgr)`` -> the original's (candidate, subset).

    The weight file is looked up when the back-end is built (``weights_path`` bypasses the lookup, for tests);
    the network loads in ``setup()``.
    """

    NAME = NAME
    KIND = "pose"
    APPROXIMATE = APPROXIMATE
    LICENCE = f"{_WEIGHTS_LICENCE} (weights); pytorch-openpose code MIT"
    WEIGHT_FILES = (WEIGHTS_BODY.filename,)
    Config = OpenPoseConfig

    def __init__(self, config: OpenPoseConfig | None = None, weights_dir: str | Path | None = None,
                 weights_path: str | Path | None = None):
        super().__init__(config, weights_dir)
        config = self.config
        self.weights = Path(weights_path) if weights_path else find_weights(WEIGHTS_BODY, config.weights or None,
                                                                             weights_dir)
        self._model: Any = None
        self.device: Any = None  # resolved in setup(), in the process that computes

    def setup(self) -> None:
        if self._model is None:
            self.device = resolve_device(self.config.device)
            self._model = load_body_net(self.weights, getattr(torch, self.config.dtype)).to(self.device)
            logger.info("OpenPose body loaded from %s (on %s)", self.weights, self.device)

    def close(self) -> None:
        self._model = None

    def maps(self, bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(heat maps H x W x 19, PAFs H x W x 38) at image size, accumulated over ``scale_search``."""
        return self.maps_batch([bgr])[0]

    def forward(self, im: np.ndarray) -> tuple[Any, Any]:
        """The network on (N, 3, h, w) float32 inputs: (PAFs, heat maps) on the model's device."""
        self.setup()
        with torch.inference_mode():
            return self._model(torch.from_numpy(im).to(device=self.device, dtype=getattr(torch, self.config.dtype)))

    def maps_batch(self, bgrs: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """`maps` of several images; images of one size share each scale's forward (the pipeline's photos all
        have the canvas size)."""
        out: list[Any] = [None] * len(bgrs)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, bgr in enumerate(bgrs):
            groups.setdefault(bgr.shape, []).append(i)
        for members in groups.values():
            for i, m in zip(members, self._maps_same_size([bgrs[i] for i in members]), strict=True):
                out[i] = m
        return out

    def _maps_same_size(self, bgrs: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        cfg = self.config
        h, w = bgrs[0].shape[:2]
        heatmap_avg = [np.zeros((h, w, 19)) for _ in bgrs]
        paf_avg = [np.zeros((h, w, 38)) for _ in bgrs]
        n = len(cfg.scale_search)
        for s in cfg.scale_search:
            scale = s * cfg.boxsize / h
            ims = []
            for bgr in bgrs:
                img = cv2.resize(bgr, (0, 0), fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
                padded, (pad_down, pad_right) = _pad_right_down(img, cfg.stride, cfg.pad_value)
                ims.append(np.ascontiguousarray(np.transpose(np.float32(padded[:, :, :, None]), (3, 2, 0, 1))
                                                / 256 - 0.5))
            paf_t, heat_t = self.forward(np.concatenate(ims))
            paf_np, heat_np = paf_t.cpu().numpy(), heat_t.cpu().numpy()
            # one input size per group, so one crop for all
            crop = (padded.shape[0] - pad_down, padded.shape[1] - pad_right)

            def to_image(m, crop=crop):
                m = np.transpose(m, (1, 2, 0))
                m = cv2.resize(m, (0, 0), fx=cfg.stride, fy=cfg.stride, interpolation=cv2.INTER_CUBIC)
                m = m[:crop[0], :crop[1], :]
                return cv2.resize(m, (w, h), interpolation=cv2.INTER_CUBIC)

            for j in range(len(bgrs)):
                heatmap_avg[j] += heatmap_avg[j] + to_image(heat_np[j]) / n  # sic: the original's accumulation
                paf_avg[j] += to_image(paf_np[j]) / n
        return list(zip(heatmap_avg, paf_avg, strict=True))

    def detect(self, bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """pytorch-openpose's ``Body.__call__``: (candidate, subset) for an HxWx3 uint8 BGR image."""
        return self._detect_from_maps(bgr, *self.maps(bgr))

    def _detect_from_maps(self, bgr: np.ndarray, heatmap_avg: np.ndarray,
                          paf_avg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        all_peaks = find_peaks(heatmap_avg, self.config.thre1)
        connection_all, special_k = connect_limbs(all_peaks, paf_avg, bgr.shape[0], self.config.thre2)
        return assemble_persons(all_peaks, connection_all, special_k)

    def __call__(self, rgb: np.ndarray) -> PoseResult:
        return self._result(*self.detect(_bgr(rgb)))

    def call_batch(self, rgbs: list[np.ndarray]) -> list[Any]:
        """``[self(rgb) for rgb in rgbs]`` with batched forwards; a sample's InputError (no person, not an image)
        is returned in its place."""
        out: list[Any] = [None] * len(rgbs)
        bgrs: dict[int, np.ndarray] = {}
        for i, rgb in enumerate(rgbs):
            try:
                bgrs[i] = _bgr(rgb)
            except InputError as exc:
                out[i] = exc
        idx = list(bgrs)
        for i, maps in zip(idx, self.maps_batch([bgrs[i] for i in idx]), strict=True):
            try:
                out[i] = self._result(*self._detect_from_maps(bgrs[i], *maps))
            except InputError as exc:
                out[i] = exc
        return out

    @staticmethod
    def _result(candidate: np.ndarray, subset: np.ndarray) -> PoseResult:
        if len(subset) == 0:
            raise NoPersonError("OpenPose found no person (no skeleton with 4 or more parts)")
        return PoseResult(keypoints=OpenPoseKeypoints(coco18_to_body25(main_person_coco18(candidate, subset))))


def _bgr(rgb: np.ndarray) -> np.ndarray:
    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
        raise InputError(f"expected an H x W x 3 uint8 RGB image, got {a.dtype} {a.shape}")
    return np.ascontiguousarray(a[:, :, ::-1])


def main_person_coco18(candidate: np.ndarray, subset: np.ndarray) -> np.ndarray:
    """(18, 3) x, y, score of the person with the most parts (ties: highest total score); missing = 0, 0, 0."""
    order = sorted(range(len(subset)), key=lambda i: (-subset[i][-1], -subset[i][-2]))
    row = subset[order[0]]
    kp = np.zeros((18, 3), np.float32)
    for part in range(18):
        idx = int(row[part])
        if idx >= 0:
            kp[part] = candidate[idx, :3]
    return kp
