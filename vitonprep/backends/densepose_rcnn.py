"""DensePose R50-FPN s1x back-end (``densepose-rcnn-r50-fpn``): the model behind VITON-HD's ``image-densepose``.

The official weight file ``model_final_162be9.pkl`` (detectron2 DensePose model zoo, ``densepose_rcnn_R_50_FPN_s1x``)
runs here on plain PyTorch + torchvision (:mod:`densepose_rcnn_model`), read through a numpy-only
unpickler (:mod:`densepose_rcnn_weights`). When ``detectron2`` and ``densepose`` are importable, the original
implementation (:mod:`densepose_detectron2`) runs instead (``implementation: auto``); ``implementation:
torchvision`` or ``detectron2`` forces one. Tests prove the port equals detectron2 on seeded random weights
(``tests/fixtures/parity/densepose``).

What one call does, as detectron2's ``DefaultPredictor`` + ``apply_net show dp_segm`` do:

1. RGB -> BGR, resize so the short side is ``min_size`` (800) and the long side at most ``max_size`` (1333),
   PIL bilinear on uint8 (``ResizeShortestEdge``).
2. Detect persons, keep scores >= ``score_thresh`` (0.8, apply_net's ``--min_score``); boxes scaled back to the
   photo and clipped (``detector_postprocess``).
3. Per instance, best first: the 112x112 outputs resampled bilinearly to the integer box (x, y, w, h truncated),
   I = argmax(fine) where argmax(coarse) > 0, U/V of that part; pasted into a full-resolution map where I > 0,
   later (lower-scoring) instances drawing over earlier ones, like the visualiser on one canvas.

The result's ``parts`` is the I map (0 = background, 1..24) that :func:`vitonprep.derive.densepose.render_densepose`
turns into the PARULA image VITON-HD ships (detectron2 ``apply_net show dp_segm``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from vitonprep.backends import densepose_detectron2
from vitonprep.backends.densepose_outputs import (
    DensePosePredictor,
    DensePoseResult,
    check_rgb,
    paste_instances,
    result_from_outputs,
    scale_boxes_to_photo,
)
from vitonprep.backends.densepose_rcnn_model import DensePoseRCNN as DensePoseRCNNModel
from vitonprep.backends.densepose_rcnn_model import DensePoseRCNNConfig
from vitonprep.backends.densepose_rcnn_weights import expected_shapes, state_dict_from_pkl
from vitonprep.backends.devices import check_device, resolve_device
from vitonprep.backends.protocols import Backend
from vitonprep.errors import ConfigError, InputError
from vitonprep.weights import WeightSpec, find_weights, register_weights

logger = logging.getLogger(__name__)

NAME = "densepose-rcnn-r50-fpn"
APPROXIMATE = False

# DensePoseResult, paste_instances and scale_boxes_to_photo live in densepose_outputs (shared with the detectron2
# implementation); they stay importable from here, where callers found them before.
__all__ = ["NAME", "APPROXIMATE", "WEIGHTS", "DensePoseRCNNSettings", "DensePoseResult", "DensePoseRCNNBackend",
           "DensePoseRCNN", "make_densepose_backend", "resize_shape", "resize_bgr", "paste_instances",
           "scale_boxes_to_photo"]

WEIGHTS = register_weights(WeightSpec(
    name=NAME,
    filename="model_final_162be9.pkl",
    source="detectron2 DensePose model zoo, densepose_rcnn_R_50_FPN_s1x (model id 165712039): "
           "https://dl.fbaipublicfiles.com/densepose/densepose_rcnn_R_50_FPN_s1x/165712039/model_final_162be9.pkl",
    licence="CC BY-SA 3.0 (DensePose model-zoo weights); detectron2 code Apache-2.0",
    # 255,757,821 bytes; the digest quoted by several independent projects that pin this file
    sha256="b8a7382001b16e453bad95ca9dbc68ae8f2b839b304cf90eaf5c27fbdb4dae91",
))

_IMPLEMENTATIONS = ("auto", "torchvision", "detectron2")
_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class DensePoseRCNNSettings:
    """Pipeline ``params`` of the back-end."""

    weights: str = ""  # explicit path to model_final_162be9.pkl (else --weights-dir / $VITONPREP_WEIGHTS_DIR)
    implementation: str = "auto"  # auto: detectron2 when importable, else the torchvision port
    min_size: int = 800  # INPUT.MIN_SIZE_TEST
    max_size: int = 1333  # INPUT.MAX_SIZE_TEST
    score_thresh: float = 0.8  # apply_net --min_score
    dtype: str = "float32"  # torchvision port only; float64 is what the parity tests use
    device: str = "auto"  # auto (CUDA when torch sees one, resolved in setup()) | cpu | cuda | cuda:N

    def __post_init__(self) -> None:
        check_device(self.device)
        if self.implementation not in _IMPLEMENTATIONS:
            raise TypeError(f"implementation must be one of {_IMPLEMENTATIONS}, got {self.implementation!r}")
        if self.dtype not in _DTYPES:
            raise TypeError(f"dtype must be one of {sorted(_DTYPES)}, got {self.dtype!r}")
        if not 0.0 <= self.score_thresh <= 1.0:
            raise TypeError(f"score_thresh must lie in 0..1, got {self.score_thresh}")


# ------------------------------------------------------------------------------------------------ pre/post


def resize_shape(h: int, w: int, min_size: int, max_size: int) -> tuple[int, int]:
    """detectron2 ``ResizeShortestEdge.get_output_shape`` -> (new_h, new_w)."""
    size = min_size * 1.0
    scale = size / min(h, w)
    newh, neww = (size, scale * w) if h < w else (scale * h, size)
    if max(newh, neww) > max_size:
        scale = max_size * 1.0 / max(newh, neww)
        newh, neww = newh * scale, neww * scale
    return int(newh + 0.5), int(neww + 0.5)


def resize_bgr(image_bgr: np.ndarray, min_size: int, max_size: int) -> np.ndarray:
    """PIL bilinear resize of a uint8 image, as detectron2's ``ResizeTransform.apply_image``."""
    h, w = image_bgr.shape[:2]
    newh, neww = resize_shape(h, w, min_size, max_size)
    return np.asarray(Image.fromarray(np.ascontiguousarray(image_bgr)).resize((neww, newh), Image.BILINEAR))


# ------------------------------------------------------------------------------------------------ back-end


class DensePoseRCNNBackend(DensePosePredictor):
    """The torchvision port: ``setup()`` loads the weights, ``backend(rgb)`` -> HxW part-index map (uint8)."""

    implementation = "torchvision"

    def __init__(self, settings: DensePoseRCNNSettings, weights_path: str | Path):
        self.settings = settings
        self.weights_path = Path(weights_path)
        self.model: Any = None
        self.device: Any = None  # resolved in setup(), in the process that computes

    @property
    def note(self) -> str:
        return f"DensePose R50-FPN s1x ({self.weights_path.name}) on the torchvision port, score >= " \
               f"{self.settings.score_thresh}"

    def setup(self) -> None:
        if self.model is not None:
            return
        dtype = _DTYPES[self.settings.dtype]
        cfg = DensePoseRCNNConfig(score_thresh=self.settings.score_thresh)
        with torch.device("meta"):
            shapes = expected_shapes(DensePoseRCNNModel(cfg))
        state = state_dict_from_pkl(self.weights_path, shapes, dtype=dtype)
        model = DensePoseRCNNModel(cfg).to(dtype)
        model.load_state_dict(state, strict=True)
        self.device = resolve_device(self.settings.device)
        self.model = model.eval().to(self.device)
        logger.info("loaded %s (%d arrays, %s, on %s)", self.weights_path, len(state), self.settings.dtype,
                    self.device)

    def predict(self, image: np.ndarray) -> DensePoseResult:
        """``image``: HxWx3 uint8 RGB photo. Raises NoPersonError when no person scores >= the threshold."""
        rgb = check_rgb(image)
        self.setup()
        s = self.settings
        resized = resize_bgr(rgb[:, :, ::-1], s.min_size, s.max_size)
        x = torch.as_tensor(resized.astype(np.float32).transpose(2, 0, 1)).to(self.device)
        det, out = self.model(x)
        return result_from_outputs(det.boxes, det.scores, out, resized.shape[:2], rgb.shape[:2])

    def predict_batch(self, images: list[np.ndarray]) -> list[Any]:
        """`predict` on several photos: photos whose resized size is equal share one backbone pass (the pipeline's
        photos all have the canvas size). Each entry is a DensePoseResult or the InputError of that photo."""
        self.setup()
        s = self.settings
        out: list[Any] = [None] * len(images)
        groups: dict[tuple[int, int], list[tuple[int, np.ndarray, np.ndarray]]] = {}
        for i, image in enumerate(images):
            rgb = check_rgb(image)  # a wrong input (TypeError) is the caller's bug: raised, as in predict
            resized = resize_bgr(rgb[:, :, ::-1], s.min_size, s.max_size)
            groups.setdefault(resized.shape[:2], []).append((i, rgb, resized))
        for members in groups.values():
            x = torch.as_tensor(np.stack([r.astype(np.float32).transpose(2, 0, 1) for _, _, r in members]))
            for (i, rgb, resized), (det, dp) in zip(members, self.model.forward_batch(x.to(self.device)), strict=True):
                try:
                    out[i] = result_from_outputs(det.boxes, det.scores, dp, resized.shape[:2], rgb.shape[:2])
                except InputError as exc:
                    out[i] = exc
        return out


def make_densepose_backend(settings: DensePoseRCNNSettings | dict,
                           weights_dir: str | Path | None = None) -> DensePoseRCNNBackend | Any:
    """The implementation for ``settings``: resolves the weight file now (a missing file fails before any image is
    touched) and picks detectron2 or the torchvision port; nothing is loaded until ``setup()``."""
    if isinstance(settings, dict):
        settings = DensePoseRCNNSettings(**settings)
    path = find_weights(WEIGHTS, settings.weights or None, weights_dir)
    if settings.implementation in ("auto", "detectron2"):
        missing = densepose_detectron2.missing_modules()
        if not missing:
            return densepose_detectron2.Detectron2DensePose(settings, path)
        if settings.implementation == "detectron2":
            raise ConfigError(f"{NAME}: {densepose_detectron2.Detectron2Unavailable(missing)}")
        logger.info("%s: %s not importable, using the torchvision port of the model", NAME, " and ".join(missing))
    return DensePoseRCNNBackend(settings, path)


class DensePoseRCNN(Backend):
    """``densepose-rcnn-r50-fpn``: the implementation `make_densepose_backend` picks, behind the back-end protocol.

    The weight file is looked up when the back-end is built; nothing is loaded until ``setup()``.
    """

    NAME = NAME
    KIND = "densepose"
    APPROXIMATE = APPROXIMATE
    LICENCE = WEIGHTS.licence
    WEIGHT_FILES = (WEIGHTS.filename,)
    Config = DensePoseRCNNSettings
    READS = ("image",)

    def __init__(self, config: DensePoseRCNNSettings | None = None, weights_dir: str | Path | None = None):
        super().__init__(config, weights_dir)
        self.impl = make_densepose_backend(self.config, weights_dir)

    @property
    def note(self) -> str:
        return self.impl.note

    @property
    def device_note(self) -> str:
        return self.impl.device_note

    def setup(self) -> None:
        self.impl.setup()

    def close(self) -> None:
        self.impl.close()

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return self.impl(image)

    def call_batch(self, images: list[np.ndarray]) -> list[Any]:
        return self.impl.call_batch(images)

