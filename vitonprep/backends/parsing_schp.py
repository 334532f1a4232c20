"""SCHP human parsing (Self-Correction-Human-Parsing) back-end: pre / post-processing and the parsers.

Reads the official ``exp-schp-*.pth`` files (LIP 20 classes at 473x473, ATR 18 at 512x512, Pascal-Person-Part 7
at 512x512) through the network of `vitonprep.backends.parsing_schp_net`, or the ONNX exports IDM-VTON /
OOTDiffusion ship (through onnxruntime). ``schp_net`` and ``read_schp_state_dict`` are re-exported from that module
for the modules and tests that import them from here.

Inference follows ``simple_extractor.py``: BGR input, the whole image affine-fitted (aspect kept, centred, black
borders) into the model's input size, normalised with the BGR mean/std, the fusion logits upsampled bilinearly
(align_corners) to the input size, warped back to the image with the inverse affine and arg-maxed.

The CIHP back-end (``parsing-schp``) runs LIP and ATR, takes LIP's labels (LIP 10 Jumpsuits -> CIHP 6 Dress) and
synthesises CIHP 10 (neck / torso skin) where ATR says face and LIP does not (IDM-VTON's rule).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.nn import functional as F

from vitonprep.backends.devices import ModelOnDevice, check_device, device_note, onnx_providers, resolve_device

# schp_net and read_schp_state_dict are re-exported: other modules' tests import them from here
from vitonprep.backends.parsing_schp_net import RESNET101_LAYERS, load_schp, read_schp_state_dict, schp_net  # noqa: F401
from vitonprep.backends.protocols import Backend
from vitonprep.derive.labels import lip_to_cihp, synthesise_neck
from vitonprep.errors import InputError
from vitonprep.weights import WeightSpec, find_weights, register_weights

logger = logging.getLogger(__name__)

NAME = "parsing-schp"
APPROXIMATE = False

_SCHP_SOURCE = ("https://github.com/GoGoDuck912/Self-Correction-Human-Parsing#pretrained-models "
                "(Google Drive folder 1uOaQCpNtosIjEL2phQKEdiYd0Td18jNo)")
_SCHP_LICENCE = "MIT (Self-Correction-Human-Parsing); LIP/ATR training data research-only"
_ONNX_SOURCE = "https://huggingface.co/spaces/yisol/IDM-VTON/tree/main/ckpt/humanparsing"
_ONNX_LICENCE = "shipped with IDM-VTON (CC BY-NC-SA 4.0); derived from the MIT SCHP weights"

WEIGHTS_LIP = register_weights(WeightSpec("schp-lip", "exp-schp-201908261155-lip.pth", _SCHP_SOURCE, _SCHP_LICENCE))
WEIGHTS_ATR = register_weights(WeightSpec("schp-atr", "exp-schp-201908301523-atr.pth", _SCHP_SOURCE, _SCHP_LICENCE))
WEIGHTS_PASCAL = register_weights(WeightSpec("schp-pascal", "exp-schp-201908270938-pascal-person-part.pth",
                                             _SCHP_SOURCE, _SCHP_LICENCE))
WEIGHTS_LIP_ONNX = register_weights(WeightSpec("schp-lip-onnx", "parsing_lip.onnx", _ONNX_SOURCE, _ONNX_LICENCE))
WEIGHTS_ATR_ONNX = register_weights(WeightSpec("schp-atr-onnx", "parsing_atr.onnx", _ONNX_SOURCE, _ONNX_LICENCE))


@dataclass(frozen=True)
class SCHPDataset:
    name: str
    num_classes: int
    input_size: tuple[int, int]  # (height, width) of the network input
    labels: tuple[str, ...]


DATASETS: dict[str, SCHPDataset] = {
    "lip": SCHPDataset("lip", 20, (473, 473), (
        "Background", "Hat", "Hair", "Glove", "Sunglasses", "Upper-clothes", "Dress", "Coat", "Socks", "Pants",
        "Jumpsuits", "Scarf", "Skirt", "Face", "Left-arm", "Right-arm", "Left-leg", "Right-leg", "Left-shoe",
        "Right-shoe")),
    "atr": SCHPDataset("atr", 18, (512, 512), (
        "Background", "Hat", "Hair", "Sunglasses", "Upper-clothes", "Skirt", "Pants", "Dress", "Belt", "Left-shoe",
        "Right-shoe", "Face", "Left-leg", "Right-leg", "Left-arm", "Right-arm", "Bag", "Scarf")),
    "pascal": SCHPDataset("pascal", 7, (512, 512), (
        "Background", "Head", "Torso", "Upper Arms", "Lower Arms", "Upper Legs", "Lower Legs")),
}
TORCH_WEIGHTS = {"lip": WEIGHTS_LIP, "atr": WEIGHTS_ATR, "pascal": WEIGHTS_PASCAL}
ONNX_WEIGHTS = {"lip": WEIGHTS_LIP_ONNX, "atr": WEIGHTS_ATR_ONNX}

#: BGR mean / std of the ImageNet ResNet-101 SCHP starts from (input_space BGR)
MEAN_BGR = (0.406, 0.456, 0.485)
STD_BGR = (0.225, 0.224, 0.229)


# ---------------------------------------------------------------- pre / post-processing

def fit_transform(width: int, height: int, input_size: tuple[int, int], inverse: bool = False) -> np.ndarray:
    """2x3 affine that fits the whole ``width`` x ``height`` image into ``input_size`` (h, w), centred, aspect kept.

    Same three-point construction (float32) as SCHP's ``get_affine_transform`` with the image box
    ``[0, 0, width - 1, height - 1]`` and no rotation, so the warp is the original's to the last bit.
    """
    out_h, out_w = input_size
    aspect = out_w / out_h
    bw, bh = width - 1, height - 1
    center = np.array([bw * 0.5, bh * 0.5], np.float32)
    if bw > aspect * bh:
        bh = bw / aspect
    elif bw < aspect * bh:
        bw = bh * aspect
    src_w = np.float32(bw)
    src = np.zeros((3, 2), np.float32)
    dst = np.zeros((3, 2), np.float32)
    src[0] = center
    src[1] = center + np.array([0, src_w * -0.5], np.float32)
    dst[0] = [(out_w - 1) * 0.5, (out_h - 1) * 0.5]
    dst[1] = dst[0] + np.array([0, (out_w - 1) * -0.5], np.float32)
    for pts in (src, dst):  # third point: the second rotated 90 degrees about the first
        d = pts[0] - pts[1]
        pts[2] = pts[1] + np.array([-d[1], d[0]], np.float32)
    return cv2.getAffineTransform(dst, src) if inverse else cv2.getAffineTransform(src, dst)


def preprocess(bgr: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    """(1, 3, h, w) float32 network input from an HxWx3 uint8 BGR image."""
    h, w = bgr.shape[:2]
    warped = cv2.warpAffine(bgr, fit_transform(w, h, input_size), (int(input_size[1]), int(input_size[0])),
                            flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    x = warped.astype(np.float32).transpose(2, 0, 1) / np.float32(255)
    x = (x - np.array(MEAN_BGR, np.float32)[:, None, None]) / np.array(STD_BGR, np.float32)[:, None, None]
    return x[None]


def logits_to_image(fusion: Any, width: int, height: int, input_size: tuple[int, int]) -> np.ndarray:
    """HxWxC logits in image space from the (1, C, h', w') fusion output (torch tensor or numpy)."""
    t = fusion if isinstance(fusion, torch.Tensor) else torch.from_numpy(np.asarray(fusion))
    t = F.interpolate(t, size=tuple(input_size), mode="bilinear", align_corners=True)[0]
    hwc = t.permute(1, 2, 0).cpu().numpy()
    inv = fit_transform(width, height, input_size, inverse=True)
    chans = [cv2.warpAffine(np.ascontiguousarray(hwc[:, :, c]), inv, (int(width), int(height)), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0) for c in range(hwc.shape[2])]
    return np.stack(chans, axis=2)


# ---------------------------------------------------------------- parsers

class SCHPParser(ModelOnDevice):
    """One SCHP model (``dataset`` lip / atr / pascal) from a ``.pth`` (PyTorch) or ``.onnx`` (onnxruntime) file.

    ``__call__(rgb)`` -> HxW uint8 labels of that dataset; ``logits(rgb)`` -> HxWxC float32.
    The model is loaded lazily (first call or ``setup()``), in the worker process.
    """

    def __init__(self, dataset: str, weights: str | Path, input_size: tuple[int, int] | None = None,
                 layers: tuple[int, int, int, int] = RESNET101_LAYERS, threads: int = 0, dtype: str = "float32",
                 device: str = "auto"):
        if dataset not in DATASETS:
            raise ValueError(f"unknown SCHP dataset {dataset!r}; expected one of {sorted(DATASETS)}")
        self.dataset = DATASETS[dataset]
        self.weights = Path(weights)
        self.input_size = tuple(input_size or self.dataset.input_size)
        self.layers = tuple(layers)
        self.threads = threads
        if dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
        self.dtype = dtype
        self.device_setting = check_device(device)
        self.device: Any = None  # resolved in setup(), in the process that computes
        self.runtime = "onnx" if self.weights.suffix.lower() == ".onnx" else "torch"
        self._model: Any = None

    def setup(self) -> "SCHPParser":
        if self._model is not None:
            return self
        if self.runtime == "onnx":
            import onnxruntime as ort  # heavy, and only for the ONNX runtime

            opts = ort.SessionOptions()
            if self.threads:
                opts.intra_op_num_threads = self.threads
            providers = onnx_providers(self.device_setting)
            self._model = ort.InferenceSession(str(self.weights), opts, providers=providers)
            self.device = "cuda" if self._model.get_providers()[0] == "CUDAExecutionProvider" else "cpu"
        else:
            self.device = resolve_device(self.device_setting)
            model = load_schp(self.weights, self.dataset.num_classes, self.layers, getattr(torch, self.dtype))
            self._model = model.to(self.device)
        logger.info("SCHP %s loaded from %s (%s, on %s)", self.dataset.name, self.weights, self.runtime, self.device)
        return self

    def close(self) -> None:
        self._model = None

    def fusion_logits(self, x: np.ndarray) -> Any:
        """The network's fusion output (N, C, h/4, w/4) for preprocessed inputs (N, 3, h, w), on the model's
        device (torch) or a numpy array (onnx)."""
        self.setup()
        if self.runtime == "onnx":
            sess = self._model
            inp = sess.get_inputs()[0]
            # IDM-VTON's exports return [parsing, fusion, edge]; the fusion logits are output 1
            if inp.shape and inp.shape[0] == 1 and len(x) > 1:  # an export with a fixed batch of one
                return np.concatenate([sess.run(None, {inp.name: x[i:i + 1].astype(np.float32)})[1]
                                       for i in range(len(x))])
            return sess.run(None, {inp.name: x.astype(np.float32)})[1]
        with torch.inference_mode():
            return self._model(torch.from_numpy(x).to(device=self.device, dtype=getattr(torch, self.dtype)))[1]

    def logits(self, rgb: np.ndarray) -> np.ndarray:
        a = _check_rgb(rgb)
        bgr = np.ascontiguousarray(a[:, :, ::-1])
        h, w = a.shape[:2]
        return logits_to_image(self.fusion_logits(preprocess(bgr, self.input_size)), w, h, self.input_size)

    def logits_batch(self, rgbs: list[np.ndarray]) -> list[np.ndarray]:
        """`logits` of several images (any sizes: every input is fitted to the model's size) in one forward."""
        arrays = [_check_rgb(rgb) for rgb in rgbs]
        x = np.concatenate([preprocess(np.ascontiguousarray(a[:, :, ::-1]), self.input_size) for a in arrays])
        fusion = self.fusion_logits(x)
        return [logits_to_image(fusion[i:i + 1], a.shape[1], a.shape[0], self.input_size)
                for i, a in enumerate(arrays)]

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        return np.argmax(self.logits(rgb), axis=2).astype(np.uint8)

    def call_batch(self, rgbs: list[np.ndarray]) -> list[np.ndarray]:
        """``[self(rgb) for rgb in rgbs]`` with one forward for the batch."""
        return [np.argmax(lg, axis=2).astype(np.uint8) for lg in self.logits_batch(rgbs)]


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
        raise InputError(f"expected an H x W x 3 uint8 RGB image, got {a.dtype} {a.shape}")
    return a


def lip_atr_to_cihp(lip: np.ndarray, atr: np.ndarray) -> np.ndarray:
    """CIHP labels from an SCHP-LIP and an SCHP-ATR map: LIP remapped, neck (10) = ATR face and not LIP face."""
    return synthesise_neck(lip_to_cihp(lip), atr == 11, lip == 13)


@dataclass(frozen=True)
class SCHPParsingConfig:
    """``parsing-schp`` params: explicit weight paths (a file, or a folder holding the official file name)."""

    lip_weights: str = ""
    atr_weights: str = ""
    runtime: str = "torch"  # "torch" (official .pth) | "onnx" (IDM-VTON's parsing_*.onnx)
    threads: int = 0  # onnxruntime intra-op threads (0: its default)
    device: str = "auto"  # auto (CUDA when visible, resolved in setup()) | cpu | cuda | cuda:N; onnx: CUDA provider

    def __post_init__(self) -> None:
        if self.runtime not in ("torch", "onnx"):
            raise ValueError(f"runtime must be 'torch' or 'onnx', got {self.runtime!r}")
        check_device(self.device)


class SCHPCIHPParser(Backend):
    """The ``parsing-schp`` back-end: (rgb, pose, category) -> CIHP labels from SCHP LIP + ATR.

    ``pose`` and ``category`` are not used (SCHP sees only the photo); they are accepted for the stage interface.
    Both weight files are looked up when the back-end is built; the models load in ``setup()``.
    """

    NAME = NAME
    KIND = "parsing"
    APPROXIMATE = APPROXIMATE
    LICENCE = _SCHP_LICENCE
    WEIGHT_FILES = tuple(spec.filename for spec in (*TORCH_WEIGHTS.values(), *ONNX_WEIGHTS.values()))
    Config = SCHPParsingConfig

    def __init__(self, config: SCHPParsingConfig | None = None, weights_dir: str | Path | None = None):
        super().__init__(config, weights_dir)
        config = self.config
        specs = ONNX_WEIGHTS if config.runtime == "onnx" else TORCH_WEIGHTS
        self.lip = SCHPParser("lip", find_weights(specs["lip"], config.lip_weights or None, weights_dir),
                              threads=config.threads, device=config.device)
        self.atr = SCHPParser("atr", find_weights(specs["atr"], config.atr_weights or None, weights_dir),
                              threads=config.threads, device=config.device)

    @property
    def device_note(self) -> str:
        return device_note(self.lip.device)

    def setup(self) -> None:
        self.lip.setup()
        self.atr.setup()

    def close(self) -> None:
        self.lip.close()
        self.atr.close()

    def __call__(self, rgb: np.ndarray, pose: Any = None, category: str = "upper_body") -> np.ndarray:
        return lip_atr_to_cihp(self.lip(rgb), self.atr(rgb))

    def call_batch(self, rgbs: list[np.ndarray], poses: list[Any] | None = None,
                   categories: list[str] | None = None) -> list[Any]:
        """``[self(rgb) for rgb in rgbs]``, one LIP and one ATR forward for the batch; a sample that is not an
        RGB image gets its InputError in its place."""
        out: list[Any] = [None] * len(rgbs)
        good = []
        for i, rgb in enumerate(rgbs):
            try:
                _check_rgb(rgb)
                good.append(i)
            except InputError as exc:
                out[i] = exc
        if good:
            batch = [rgbs[i] for i in good]
            for i, lip, atr in zip(good, self.lip.call_batch(batch), self.atr.call_batch(batch), strict=True):
                out[i] = lip_atr_to_cihp(lip, atr)
        return out
