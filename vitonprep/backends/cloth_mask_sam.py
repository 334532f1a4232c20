"""Cloth masks with Segment Anything (the ``segment-anything`` package), prompted with the garment's box and centre.

StableVITON's README suggests SAM for masks of arbitrary garment photos. SAM needs a
prompt: the garment's box and one foreground point come from the OpenCV cloth mask (``cloth-mask-opencv``, a
border-colour model that is right to IoU ~0.99 on studio photos), so SAM only refines an outline it is pointed at:

* box = the bounding box of the OpenCV mask, grown by ``box_margin`` x its size on every side (clipped);
* point = the box centre when it lies on the OpenCV mask, else the mask pixel farthest from the mask's edge (the
  centre of a strappy top or a pair of trousers can be background).

SAM's single-mask output (``multimask_output=False``) is then made a filled silhouette like VITON-HD's cloth masks
(largest component, interior holes filled) when ``fill_holes``. When the OpenCV prior finds no garment the sample
fails with its reason (no prompt, no guess). The checkpoint is read with ``torch.load(weights_only=True)`` into the
model segment-anything's builder makes; a missing, unexpected or misshapen key is refused by name.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import torch  # this module is imported only when a pipeline names cloth-mask-sam (registry)

from vitonprep.backends.cloth_mask_opencv import cloth_mask
from vitonprep.backends.devices import ModelOnDevice, check_device, resolve_device
from vitonprep.backends.protocols import Backend
from vitonprep.errors import ConfigError, InputError
from vitonprep.weights import WeightSpec, find_weights, read_torch_weights, register_weights

logger = logging.getLogger(__name__)

NAME = "cloth-mask-sam"
APPROXIMATE = False

_SAM_SOURCE = "https://github.com/facebookresearch/segment-anything#model-checkpoints"
_SAM_LICENCE = "Apache-2.0 (segment-anything)"
WEIGHTS = {
    "vit_h": register_weights(WeightSpec("sam-vit-h", "sam_vit_h_4b8939.pth", _SAM_SOURCE, _SAM_LICENCE)),
    "vit_l": register_weights(WeightSpec("sam-vit-l", "sam_vit_l_0b3195.pth", _SAM_SOURCE, _SAM_LICENCE)),
    "vit_b": register_weights(WeightSpec("sam-vit-b", "sam_vit_b_01ec64.pth", _SAM_SOURCE, _SAM_LICENCE)),
}


@dataclass(frozen=True)
class SAMClothMaskConfig:
    model_type: str = "vit_h"  # vit_h | vit_l | vit_b (segment-anything's registry)
    weights: str = ""  # the checkpoint, or a folder holding its official file name
    box_margin: float = 0.02  # fraction of the box size added on every side of the prompt box
    fill_holes: bool = True  # largest component with interior holes filled (VITON-HD's filled silhouettes)
    threads: int = 0  # torch intra-op threads while predicting (0: leave torch's setting)
    device: str = "auto"  # auto (CUDA when visible, resolved in setup()) | cpu | cuda | cuda:N

    def __post_init__(self) -> None:
        check_device(self.device)


def load_sam(path: str | Path, build: Callable[[], Any]):
    """``build()`` (a segment-anything builder called without a checkpoint) loaded with the weights of ``path``."""

    sd = read_torch_weights(path)
    if not isinstance(sd, dict):
        raise ValueError(f"{path}: not a SAM state dict (got {type(sd).__name__})")
    model = build()
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    if missing or unexpected:
        raise ValueError(f"{path}: keys do not match the SAM model: missing {missing[:10]}, "
                         f"unexpected {unexpected[:10]}")
    for k, v in own.items():
        if tuple(sd[k].shape) != tuple(v.shape):
            raise ValueError(f"{path}: key {k!r} has shape {tuple(sd[k].shape)}, the model needs {tuple(v.shape)}")
    model.load_state_dict(sd, strict=True)
    return model.eval()


def prompt_from_prior(prior: np.ndarray, box_margin: float) -> tuple[np.ndarray, np.ndarray]:
    """(box [x0, y0, x1, y1], point [x, y]) in pixels from a garment prior mask (HxW bool)."""
    ys, xs = np.nonzero(prior)
    if len(xs) == 0:
        raise InputError("empty garment prior: no prompt for SAM")
    h, w = prior.shape
    x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
    mx, my = box_margin * (x1 - x0 + 1), box_margin * (y1 - y0 + 1)
    box = np.array([max(0, x0 - mx), max(0, y0 - my), min(w - 1, x1 + mx), min(h - 1, y1 + my)], np.float32)
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    if prior[int(round(cy)), int(round(cx))]:
        point = np.array([cx, cy], np.float32)
    else:
        dist = cv2.distanceTransform(prior.astype(np.uint8), cv2.DIST_L2, 5)
        py, px = np.unravel_index(int(np.argmax(dist)), dist.shape)
        point = np.array([px, py], np.float32)
    return box, point


def fill_silhouette(mask: np.ndarray) -> np.ndarray:
    """Largest 8-connected component with its interior holes filled."""
    m = mask.astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    if n <= 1:
        return np.zeros(mask.shape, bool)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    comp = (labels == largest).astype(np.uint8)
    contours, _ = cv2.findContours(comp, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    out = np.zeros_like(comp)
    cv2.drawContours(out, contours, -1, 1, thickness=cv2.FILLED)
    return out.astype(bool)


class SAMClothMask(ModelOnDevice, Backend):
    """``__call__(rgb) -> HxW bool`` garment mask. The model loads lazily (``setup()`` or the first call)."""

    MODEL_ATTR = "_predictor"

    NAME = NAME
    KIND = "cloth_mask"
    APPROXIMATE = APPROXIMATE
    LICENCE = _SAM_LICENCE
    WEIGHT_FILES = tuple(spec.filename for spec in WEIGHTS.values())
    Config = SAMClothMaskConfig

    def __init__(self, config: SAMClothMaskConfig = SAMClothMaskConfig(), weights_dir: str | Path | None = None,
                 weights_path: str | Path | None = None, build: Callable[[], Any] | None = None):
        try:
            import segment_anything  # noqa: F401  (checked now: a missing package is a configuration error)
        except ImportError as exc:
            raise ConfigError("cloth-mask-sam needs the segment-anything package "
                              "(pip install 'vitonprep[reference]')") from exc
        if config.model_type not in WEIGHTS:
            raise ValueError(f"model_type must be one of {sorted(WEIGHTS)}, got {config.model_type!r}")
        self.config = config
        self.weights = Path(weights_path) if weights_path else find_weights(WEIGHTS[config.model_type],
                                                                             config.weights or None, weights_dir)
        self._build = build  # tests pass a tiny builder; None = segment-anything's registry entry
        self._predictor: Any = None
        self.device: Any = None  # resolved in setup(), in the process that computes

    def setup(self) -> "SAMClothMask":
        if self._predictor is None:
            from segment_anything import SamPredictor, sam_model_registry

            build = self._build or (lambda: sam_model_registry[self.config.model_type](checkpoint=None))
            self.device = resolve_device(self.config.device)
            # SamPredictor puts its inputs on the model's device
            self._predictor = SamPredictor(load_sam(self.weights, build).to(self.device))
            logger.info("SAM %s loaded from %s (on %s)", self.config.model_type, self.weights, self.device)
        return self

    def close(self) -> None:
        self._predictor = None

    def prompt(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return prompt_from_prior(cloth_mask(rgb), self.config.box_margin)

    def predict(self, rgb: np.ndarray, box: np.ndarray, point: np.ndarray) -> np.ndarray:
        """SAM's single mask (HxW bool) for the box + foreground point prompt, before any clean-up."""
        self.setup()
        old = torch.get_num_threads()
        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        try:
            with torch.inference_mode():
                self._predictor.set_image(rgb, image_format="RGB")
                masks, _, _ = self._predictor.predict(point_coords=point[None], point_labels=np.array([1]),
                                                      box=box, multimask_output=False)
        finally:
            torch.set_num_threads(old)
        return masks[0].astype(bool)

    def embed(self, rgbs: list[np.ndarray]) -> Any:
        """SAM's image embeddings (N, 256, 64, 64) of RGB images, one image-encoder pass for all (each image is
        resized and padded to the encoder's square input, so any sizes batch), on the model's device."""
        self.setup()
        p = self._predictor
        with torch.inference_mode():
            x = torch.cat([p.model.preprocess(self._transformed(rgb)) for rgb in rgbs])
            return p.model.image_encoder(x)

    def _transformed(self, rgb: np.ndarray) -> Any:
        """segment-anything's ``set_image`` input: long side resized, 1x3xhxw uint8 on the model's device."""
        t = torch.as_tensor(self._predictor.transform.apply_image(rgb), device=self._predictor.device)
        return t.permute(2, 0, 1).contiguous()[None, :, :, :]

    def predict_batch(self, rgbs: list[np.ndarray], boxes: list[np.ndarray],
                      points: list[np.ndarray]) -> list[np.ndarray]:
        """`predict` on several images: one encoder pass for the batch, then the (light) prompt decoder per image."""
        self.setup()
        p = self._predictor
        old = torch.get_num_threads()
        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        try:
            features = self.embed(rgbs)
            out = []
            with torch.inference_mode():
                for i, (rgb, box, point) in enumerate(zip(rgbs, boxes, points, strict=True)):
                    # the state set_image leaves behind, with this image's embedding
                    p.reset_image()
                    p.original_size = rgb.shape[:2]
                    p.input_size = tuple(self._transformed(rgb).shape[-2:])
                    p.features = features[i:i + 1]
                    p.is_image_set = True
                    masks, _, _ = p.predict(point_coords=point[None], point_labels=np.array([1]), box=box,
                                            multimask_output=False)
                    out.append(masks[0].astype(bool))
            p.reset_image()
        finally:
            torch.set_num_threads(old)
        return out

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        a = _check_rgb(rgb)
        box, point = self.prompt(a)
        return self._finish(self.predict(a, box, point))

    def call_batch(self, rgbs: list[np.ndarray]) -> list[Any]:
        """``[self(rgb) for rgb in rgbs]`` with one encoder pass; a sample's InputError (no garment prior, empty
        mask) is returned in its place."""
        out: list[Any] = [None] * len(rgbs)
        todo: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for i, rgb in enumerate(rgbs):
            try:
                a = _check_rgb(rgb)
                todo[i] = (a, *self.prompt(a))
            except InputError as exc:
                out[i] = exc
        if todo:
            idx = list(todo)
            masks = self.predict_batch(*[[todo[i][k] for i in idx] for k in range(3)])
            for i, mask in zip(idx, masks, strict=True):
                try:
                    out[i] = self._finish(mask)
                except InputError as exc:
                    out[i] = exc
        return out

    def _finish(self, mask: np.ndarray) -> np.ndarray:
        if self.config.fill_holes:
            mask = fill_silhouette(mask)
        if not mask.any():
            raise InputError("SAM returned an empty mask for the garment prompt")
        return mask


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
        raise ValueError(f"expected an H x W x 3 uint8 RGB image, got {a.dtype} {a.shape}")
    return a
