"""DensePose R50-FPN s1x through the original detectron2 + DensePose code, when both are installed.

Neither is on PyPI: users build detectron2 from source and install
``projects/DensePose``. This module imports nothing from them at import time; :func:`missing_modules` says which
of the two cannot be imported, and :class:`Detectron2Unavailable` carries that into an error message. The weight
file is read with the same numpy-only unpickler as the torchvision port (never detectron2's ``pickle.load``)
and the output goes through the same post-processing (:func:`densepose_outputs.result_from_outputs`), so both
implementations return the same :class:`~vitonprep.backends.densepose_outputs.DensePoseResult`.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vitonprep.backends.densepose_outputs import DensePosePredictor, check_rgb, result_from_outputs
from vitonprep.backends.densepose_rcnn_weights import expected_shapes, state_dict_from_pkl
from vitonprep.backends.devices import resolve_device
from vitonprep.errors import InputError, VitonprepError

logger = logging.getLogger(__name__)

__all__ = ["Detectron2Unavailable", "missing_modules", "build_config", "Detectron2DensePose"]

_REQUIRED = ("detectron2", "densepose")


class Detectron2Unavailable(VitonprepError, ImportError):
    def __init__(self, missing: list[str]):
        self.missing = list(missing)
        super().__init__(
            f"the detectron2 DensePose back-end needs {' and '.join(self.missing)}, which cannot be imported: install "
            "detectron2 from source (pip install --no-build-isolation 'git+https://github.com/facebookresearch/"
            "detectron2.git') and its DensePose project ('...detectron2.git#subdirectory=projects/DensePose'), or "
            "use implementation: torchvision")


def missing_modules() -> list[str]:
    """Names among ``detectron2`` / ``densepose`` that cannot be imported (finding them does not import them)."""
    missing = []
    for name in _REQUIRED:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing


def build_config(score_thresh: float = 0.8, min_size: int = 800, max_size: int = 1333, device: str = "cpu") -> Any:
    """The inference settings of ``Base-DensePose-RCNN-FPN.yaml`` + ``densepose_rcnn_R_50_FPN_s1x.yaml`` on
    detectron2's defaults (the yaml files are not part of the installed ``densepose`` package)."""
    from densepose import add_densepose_config
    from detectron2.config import get_cfg

    cfg = get_cfg()
    add_densepose_config(cfg)
    m = cfg.MODEL
    m.META_ARCHITECTURE = "GeneralizedRCNN"
    m.BACKBONE.NAME = "build_resnet_fpn_backbone"
    m.RESNETS.DEPTH = 50
    m.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    m.FPN.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    m.ANCHOR_GENERATOR.SIZES = [[32], [64], [128], [256], [512]]
    m.ANCHOR_GENERATOR.ASPECT_RATIOS = [[0.5, 1.0, 2.0]]
    m.RPN.IN_FEATURES = ["p2", "p3", "p4", "p5", "p6"]
    m.RPN.PRE_NMS_TOPK_TEST = 1000
    m.RPN.POST_NMS_TOPK_TEST = 1000
    m.DENSEPOSE_ON = True
    m.ROI_HEADS.NAME = "DensePoseROIHeads"
    m.ROI_HEADS.IN_FEATURES = ["p2", "p3", "p4", "p5"]
    m.ROI_HEADS.NUM_CLASSES = 1
    m.ROI_HEADS.SCORE_THRESH_TEST = score_thresh
    m.ROI_BOX_HEAD.NAME = "FastRCNNConvFCHead"
    m.ROI_BOX_HEAD.NUM_FC = 2
    m.ROI_BOX_HEAD.POOLER_RESOLUTION = 7
    m.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO = 2
    m.ROI_BOX_HEAD.POOLER_TYPE = "ROIAlign"
    m.ROI_DENSEPOSE_HEAD.NAME = "DensePoseV1ConvXHead"
    m.ROI_DENSEPOSE_HEAD.POOLER_TYPE = "ROIAlign"
    m.ROI_DENSEPOSE_HEAD.NUM_COARSE_SEGM_CHANNELS = 2
    m.WEIGHTS = ""
    m.DEVICE = device
    cfg.INPUT.MIN_SIZE_TEST = min_size
    cfg.INPUT.MAX_SIZE_TEST = max_size
    cfg.freeze()
    return cfg


class Detectron2DensePose(DensePosePredictor):
    """Same contract as :class:`~vitonprep.backends.densepose_rcnn.DensePoseRCNNBackend`, on detectron2."""

    implementation = "detectron2"

    def __init__(self, settings: Any, weights_path: str | Path):
        missing = missing_modules()
        if missing:
            raise Detectron2Unavailable(missing)
        self.settings = settings
        self.weights_path = Path(weights_path)
        self.model: Any = None
        self.resize: Any = None
        self.device: Any = None  # resolved in setup(), in the process that computes

    @property
    def note(self) -> str:
        return f"DensePose R50-FPN s1x ({self.weights_path.name}) on detectron2, score >= {self.settings.score_thresh}"

    def setup(self) -> None:
        if self.model is not None:
            return
        import densepose  # noqa: F401  (registers the DensePose heads)
        from detectron2.data import transforms as T
        from detectron2.modeling import build_model

        s = self.settings
        self.device = resolve_device(getattr(s, "device", "cpu"))
        # detectron2 builds the model (and moves its inputs) on MODEL.DEVICE
        cfg = build_config(s.score_thresh, s.min_size, s.max_size, device=str(self.device))
        model = build_model(cfg).eval()
        model.load_state_dict(state_dict_from_pkl(self.weights_path, expected_shapes(model)), strict=True)
        self.model = model
        self.resize = T.ResizeShortestEdge([s.min_size, s.min_size], s.max_size)

    def predict(self, image: np.ndarray) -> Any:
        rgb = check_rgb(image)
        self.setup()
        resized = self._resize(rgb)
        x = torch.as_tensor(resized.astype("float32").transpose(2, 0, 1))
        with torch.inference_mode():
            # no "height"/"width": boxes stay in the resized frame so that _result scales them like the port
            inst = self.model([{"image": x}])[0]["instances"]
        out = inst.pred_densepose if len(inst) else None
        return result_from_outputs(inst.pred_boxes.tensor, inst.scores, out, resized.shape[:2], rgb.shape[:2])

    def _resize(self, rgb: np.ndarray) -> np.ndarray:
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])  # the model's INPUT.FORMAT is BGR
        return self.resize.get_transform(bgr).apply_image(bgr)

    def predict_batch(self, images: list[np.ndarray]) -> list[Any]:
        """`predict` on several photos, one model call per group of equal resized size (detectron2 pads a batch
        to its largest image, which would change the results of smaller ones); InputErrors returned in place."""
        self.setup()
        out: list[Any] = [None] * len(images)
        groups: dict[tuple[int, int], list[tuple[int, np.ndarray, np.ndarray]]] = {}
        for i, image in enumerate(images):
            rgb = check_rgb(image)
            resized = self._resize(rgb)
            groups.setdefault(resized.shape[:2], []).append((i, rgb, resized))
        for members in groups.values():
            inputs = [{"image": torch.as_tensor(r.astype("float32").transpose(2, 0, 1))} for _, _, r in members]
            with torch.inference_mode():
                results = self.model(inputs)
            for (i, rgb, resized), res in zip(members, results, strict=True):
                inst = res["instances"]
                try:
                    out[i] = result_from_outputs(inst.pred_boxes.tensor, inst.scores,
                                                 inst.pred_densepose if len(inst) else None,
                                                 resized.shape[:2], rgb.shape[:2])
                except InputError as exc:
                    out[i] = exc
        return out
