"""Temporary adapters: the parsing-heuristic, parsing-schp and pose-openpose back-ends behind the `Backend` protocol.

Their modules are being split and moved onto the protocol in the same step; until their own classes carry the
class attributes, the registry points here. Each adapter only forwards (no behaviour of its own), and this module
goes away when the registry lines point at the back-ends' own classes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vitonprep.backends import parsing_heuristic, parsing_schp, pose_openpose
from vitonprep.backends.protocols import Backend
from vitonprep.backends.results import PoseResult


class HeuristicParsingBackend(Backend):
    NAME = parsing_heuristic.NAME
    KIND = "parsing"
    APPROXIMATE = True
    LICENCE = "vitonprep + mediapipe models (Apache-2.0)"
    Config = parsing_heuristic.HeuristicParsingConfig

    def __call__(self, rgb: np.ndarray, pose: PoseResult, category: str) -> np.ndarray:
        return parsing_heuristic.parse_person(rgb, pose, self.config, category=category)


class SCHPParsingBackend(Backend):
    NAME = "parsing-schp"
    KIND = "parsing"
    APPROXIMATE = False
    LICENCE = "MIT (SCHP code); weights: see their WeightSpec"
    WEIGHT_FILES = tuple(s.filename for s in (*parsing_schp.TORCH_WEIGHTS.values(),
                                              *parsing_schp.ONNX_WEIGHTS.values()))
    Config = parsing_schp.SCHPParsingConfig

    def __init__(self, config: Any = None, weights_dir: str | Path | None = None):
        super().__init__(config, weights_dir)
        self.impl = parsing_schp.SCHPCIHPParser(self.config, weights_dir)

    @property
    def device_note(self) -> str:
        return self.impl.device_note

    def setup(self) -> None:
        self.impl.setup()

    def close(self) -> None:
        self.impl.close()

    def __call__(self, rgb: np.ndarray, pose: PoseResult, category: str) -> np.ndarray:
        return self.impl(rgb, pose, category)

    def call_batch(self, rgbs: list[np.ndarray], poses: list[Any], categories: list[str]) -> list[Any]:
        return self.impl.call_batch(rgbs, poses, categories[0] if categories else "upper_body")


class OpenPoseBodyBackend(Backend):
    NAME = pose_openpose.NAME
    KIND = "pose"
    APPROXIMATE = False
    LICENCE = "CMU OpenPose academic licence (weights); pytorch-openpose code MIT"
    WEIGHT_FILES = (pose_openpose.WEIGHTS_BODY.filename,)
    Config = pose_openpose.OpenPoseConfig

    def __init__(self, config: Any = None, weights_dir: str | Path | None = None):
        super().__init__(config, weights_dir)
        self.impl = pose_openpose.OpenPoseBody(self.config, weights_dir)

    @property
    def device_note(self) -> str:
        return self.impl.device_note

    def setup(self) -> None:
        self.impl.setup()

    def close(self) -> None:
        self.impl.close()

    def __call__(self, rgb: np.ndarray) -> PoseResult:
        return self.impl(rgb)

    def call_batch(self, rgbs: list[np.ndarray]) -> list[Any]:
        return self.impl.call_batch(rgbs)
