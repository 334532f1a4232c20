"""SCHP human parsing (Self-Correction-Human-Parsing, ResNet-101 + PSP + edge + fusion) in plain PyTorch.

Reads the official ``exp-schp-*.pth`` files (LIP 20 classes at 473x473, ATR 18 at 512x512, Pascal-Person-Part 7
at 512x512; preprocess_spec §2.1, §4, §6) or the ONNX exports IDM-VTON / OOTDiffusion ship (through onnxruntime).

The original network uses InPlaceABN, a CUDA/C++ extension that builds neither for CUDA nor for CPU under torch 2.x.
`_ABN` here is the same computation as that extension's CPU kernel in inference mode: batch norm with the running
statistics whose scale is ``|weight| + eps`` (not ``weight``: InPlaceABN keeps the scale positive so that it can
invert the affine in its backward pass), then leaky ReLU with slope 0.01 where the original asks for it. A plain
``nn.BatchNorm2d`` swap is not exact. The extension's ``eps`` is a C++ ``float``, so its value is 1e-5 rounded to
float32, which we use too.

Inference follows ``simple_extractor.py``: BGR input, the whole image affine-fitted (aspect kept, centred, black
borders) into the model's input size, normalised with the BGR mean/std, the fusion logits upsampled bilinearly
(align_corners) to the input size, warped back to the image with the inverse affine and arg-maxed.

The CIHP back-end (``parsing-schp``) runs LIP and ATR, takes LIP's labels (LIP 10 Jumpsuits -> CIHP 6 Dress) and
synthesises CIHP 10 (neck / torso skin) where ATR says face and LIP does not (IDM-VTON's rule, spec §2.1).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vitonprep.backends.devices import check_device, device_note
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
#: ResNet-101 block counts
RESNET101_LAYERS = (3, 4, 23, 3)


# ---------------------------------------------------------------- network

def _build_modules():
    """The nn.Module classes, defined on first use so that importing this module does not import torch."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    # InPlaceABN's CPU kernel takes eps as a C++ float
    abn_eps = float(np.float32(1e-5))

    class ABN(nn.Module):
        """Inference-mode InPlaceABN: (x - mean) * rsqrt(var + eps) * (|w| + eps) + b, then leaky ReLU (0.01) or
        nothing.

        Parameter and buffer names are InPlaceABN's (no ``num_batches_tracked``), so the official keys load as-is.
        """

        def __init__(self, num_features: int, activation: str = "leaky_relu", slope: float = 0.01):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_var", torch.ones(num_features))
            self.activation = activation
            self.slope = slope

        def forward(self, x):
            shape = (1, -1, 1, 1)
            mul = torch.rsqrt(self.running_var + abn_eps) * (self.weight.abs() + abn_eps)
            x = (x - self.running_mean.view(shape)) * mul.view(shape) + self.bias.view(shape)
            if self.activation == "leaky_relu":
                x = F.leaky_relu(x, negative_slope=self.slope)
            return x

    def bn(n):  # the backbone's batch norms have no activation (a ReLU follows where needed)
        return ABN(n, activation="none")

    class Bottleneck(nn.Module):
        expansion = 4

        def __init__(self, inplanes, planes, stride=1, dilation=1, downsample=None):
            super().__init__()
            self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
            self.bn1 = bn(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
            self.bn2 = bn(planes)
            self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
            self.bn3 = bn(planes * 4)
            self.downsample = downsample

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            out = F.relu(self.bn2(self.conv2(out)))
            out = self.bn3(self.conv3(out))
            residual = x if self.downsample is None else self.downsample(x)
            return F.relu(out + residual)

    def up(x, hw):
        return F.interpolate(x, size=hw, mode="bilinear", align_corners=True)

    class PSPModule(nn.Module):
        def __init__(self, features=2048, out_features=512, sizes=(1, 2, 3, 6)):
            super().__init__()
            self.stages = nn.ModuleList([
                nn.Sequential(nn.AdaptiveAvgPool2d((s, s)), nn.Conv2d(features, out_features, 1, bias=False),
                              ABN(out_features)) for s in sizes])
            self.bottleneck = nn.Sequential(
                nn.Conv2d(features + len(sizes) * out_features, out_features, 3, padding=1, bias=False),
                ABN(out_features))

        def forward(self, feats):
            hw = feats.shape[2:]
            priors = [up(stage(feats), hw) for stage in self.stages] + [feats]
            return self.bottleneck(torch.cat(priors, 1))

    class EdgeModule(nn.Module):
        def __init__(self, in_fea=(256, 512, 1024), mid_fea=256, out_fea=2):
            super().__init__()
            self.conv1 = nn.Sequential(nn.Conv2d(in_fea[0], mid_fea, 1, bias=False), ABN(mid_fea))
            self.conv2 = nn.Sequential(nn.Conv2d(in_fea[1], mid_fea, 1, bias=False), ABN(mid_fea))
            self.conv3 = nn.Sequential(nn.Conv2d(in_fea[2], mid_fea, 1, bias=False), ABN(mid_fea))
            self.conv4 = nn.Conv2d(mid_fea, out_fea, 3, padding=1, bias=True)
            self.conv5 = nn.Conv2d(out_fea * 3, out_fea, 1, bias=True)

        def forward(self, x1, x2, x3):
            hw = x1.shape[2:]
            f1, f2, f3 = self.conv1(x1), self.conv2(x2), self.conv3(x3)
            e1, e2, e3 = self.conv4(f1), up(self.conv4(f2), hw), up(self.conv4(f3), hw)
            edge = self.conv5(torch.cat([e1, e2, e3], 1))
            return edge, torch.cat([f1, up(f2, hw), up(f3, hw)], 1)

    class DecoderModule(nn.Module):
        def __init__(self, num_classes):
            super().__init__()
            self.conv1 = nn.Sequential(nn.Conv2d(512, 256, 1, bias=False), ABN(256))
            self.conv2 = nn.Sequential(nn.Conv2d(256, 48, 1, bias=False), ABN(48))
            self.conv3 = nn.Sequential(nn.Conv2d(304, 256, 1, bias=False), ABN(256),
                                       nn.Conv2d(256, 256, 1, bias=False), ABN(256))
            self.conv4 = nn.Conv2d(256, num_classes, 1, bias=True)

        def forward(self, xt, xl):
            xt = up(self.conv1(xt), xl.shape[2:])
            x = self.conv3(torch.cat([xt, self.conv2(xl)], 1))
            return self.conv4(x), x

    class SCHPNet(nn.Module):
        """AugmentCE2P ResNet; forward returns (parsing, fusion, edge) logits at 1/4 of the input size."""

        def __init__(self, num_classes: int, layers: tuple[int, int, int, int] = RESNET101_LAYERS):
            super().__init__()
            self.inplanes = 128
            self.conv1 = nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False)
            self.bn1 = bn(64)
            self.conv2 = nn.Conv2d(64, 64, 3, padding=1, bias=False)
            self.bn2 = bn(64)
            self.conv3 = nn.Conv2d(64, 128, 3, padding=1, bias=False)
            self.bn3 = bn(128)
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
            self.layer1 = self._make_layer(64, layers[0])
            self.layer2 = self._make_layer(128, layers[1], stride=2)
            self.layer3 = self._make_layer(256, layers[2], stride=2)
            self.layer4 = self._make_layer(512, layers[3], dilation=2)
            self.context_encoding = PSPModule(2048, 512)
            self.edge = EdgeModule()
            self.decoder = DecoderModule(num_classes)
            # index 2 is a Dropout2d in the original (identity at inference); kept so the keys stay fushion.3.*
            self.fushion = nn.Sequential(nn.Conv2d(1024, 256, 1, bias=False), ABN(256), nn.Identity(),
                                         nn.Conv2d(256, num_classes, 1, bias=True))

        def _make_layer(self, planes, blocks, stride=1, dilation=1):
            downsample = None
            if stride != 1 or self.inplanes != planes * 4:
                downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * 4, 1, stride=stride, bias=False),
                                           bn(planes * 4))
            mods = [Bottleneck(self.inplanes, planes, stride, dilation, downsample)]
            self.inplanes = planes * 4
            mods += [Bottleneck(self.inplanes, planes, dilation=dilation) for _ in range(1, blocks)]
            return nn.Sequential(*mods)

        def forward(self, x):
            x = F.relu(self.bn1(self.conv1(x)))
            x = F.relu(self.bn2(self.conv2(x)))
            x = F.relu(self.bn3(self.conv3(x)))
            x = self.maxpool(x)
            x2 = self.layer1(x)
            x3 = self.layer2(x2)
            x4 = self.layer3(x3)
            x5 = self.layer4(x4)
            parsing, parsing_fea = self.decoder(self.context_encoding(x5), x2)
            edge, edge_fea = self.edge(x2, x3, x4)
            fusion = self.fushion(torch.cat([parsing_fea, edge_fea], 1))
            return parsing, fusion, edge

    return SCHPNet


_NET_CLASS = None


def schp_net(num_classes: int, layers: tuple[int, int, int, int] = RESNET101_LAYERS):
    """A randomly initialised SCHP network (``layers`` other than ResNet-101's only for tests)."""
    global _NET_CLASS
    if _NET_CLASS is None:
        _NET_CLASS = _build_modules()
    return _NET_CLASS(num_classes, tuple(layers))


def read_schp_state_dict(path: str | Path) -> dict[str, Any]:
    """The tensors of an official ``exp-schp-*.pth`` (``{"state_dict": {"module.<key>": tensor}}``), keys unprefixed.

    Loaded with ``weights_only=True``: the file is a pickle, and nothing but tensors and plain containers is accepted.
    """
    from vitonprep.weights import read_torch_weights

    obj = read_torch_weights(path)
    sd = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(sd, dict):
        raise ValueError(f"{path}: not an SCHP checkpoint (expected a dict with 'state_dict', "
                         f"got {type(obj).__name__})")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in sd.items()}


def load_into(model, state_dict: dict[str, Any], path: str | Path) -> None:
    """Copy ``state_dict`` into ``model``, refusing any missing, unexpected or misshapen key by name."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    if missing or unexpected:
        raise ValueError(f"{path}: keys do not match the network: missing {missing[:10]}"
                         f"{' ...' if len(missing) > 10 else ''}, unexpected {unexpected[:10]}"
                         f"{' ...' if len(unexpected) > 10 else ''}")
    for k, v in own.items():
        if tuple(state_dict[k].shape) != tuple(v.shape):
            raise ValueError(f"{path}: key {k!r} has shape {tuple(state_dict[k].shape)}, the network needs "
                             f"{tuple(v.shape)}")
    model.load_state_dict(state_dict, strict=True)


def load_schp(path: str | Path, num_classes: int, layers: tuple[int, int, int, int] = RESNET101_LAYERS,
              dtype: Any = None):
    """An SCHP network in eval mode with the weights of ``path`` (official layout), optionally cast to ``dtype``."""
    import torch

    state_dict = read_schp_state_dict(path)
    # built without initialising (meta device): every parameter and buffer is then overwritten by the file,
    # which load_into checks key by key
    with torch.device("meta"):
        model = schp_net(num_classes, layers)
    model = model.to_empty(device="cpu")
    if dtype is not None:  # cast first, so that float64 weights in the file stay float64
        model = model.to(dtype)
    load_into(model, state_dict, path)
    return model.eval()


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
    import torch
    from torch.nn import functional as F

    t = fusion if isinstance(fusion, torch.Tensor) else torch.from_numpy(np.asarray(fusion))
    t = F.interpolate(t, size=tuple(input_size), mode="bilinear", align_corners=True)[0]
    hwc = t.permute(1, 2, 0).cpu().numpy()
    inv = fit_transform(width, height, input_size, inverse=True)
    chans = [cv2.warpAffine(np.ascontiguousarray(hwc[:, :, c]), inv, (int(width), int(height)), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0) for c in range(hwc.shape[2])]
    return np.stack(chans, axis=2)


# ---------------------------------------------------------------- parsers

class SCHPParser:
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

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_model"] = None  # workers load their own copy
        return state

    def setup(self) -> "SCHPParser":
        if self._model is not None:
            return self
        if self.runtime == "onnx":
            import onnxruntime as ort

            from vitonprep.backends.devices import onnx_providers

            opts = ort.SessionOptions()
            if self.threads:
                opts.intra_op_num_threads = self.threads
            providers = onnx_providers(self.device_setting)
            self._model = ort.InferenceSession(str(self.weights), opts, providers=providers)
            self.device = "cuda" if self._model.get_providers()[0] == "CUDAExecutionProvider" else "cpu"
        else:
            import torch

            from vitonprep.backends.devices import resolve_device

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
        import torch

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
        raise ValueError(f"expected an H x W x 3 uint8 RGB image, got {a.dtype} {a.shape}")
    return a


def lip_atr_to_cihp(lip: np.ndarray, atr: np.ndarray) -> np.ndarray:
    """CIHP labels from an SCHP-LIP and an SCHP-ATR map: LIP remapped, neck (10) = ATR face and not LIP face."""
    from vitonprep.derive.labels import lip_to_cihp, synthesise_neck

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
        check_device(self.device)


class SCHPCIHPParser:
    """The ``parsing-schp`` back-end: (rgb, pose, category) -> CIHP labels from SCHP LIP + ATR.

    ``pose`` and ``category`` are not used (SCHP sees only the photo); they are accepted for the stage interface.
    """

    def __init__(self, config: SCHPParsingConfig, weights_dir: str | Path | None = None):
        if config.runtime not in ("torch", "onnx"):
            raise ValueError(f"runtime must be 'torch' or 'onnx', got {config.runtime!r}")
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

    def call_batch(self, rgbs: list[np.ndarray], poses: Any = None, category: str = "upper_body") -> list[Any]:
        """``[self(rgb) for rgb in rgbs]``, one LIP and one ATR forward for the batch; a sample that is not an
        RGB image gets its ValueError in its place."""
        out: list[Any] = [None] * len(rgbs)
        good = []
        for i, rgb in enumerate(rgbs):
            try:
                _check_rgb(rgb)
                good.append(i)
            except ValueError as exc:
                out[i] = exc
        if good:
            batch = [rgbs[i] for i in good]
            for i, lip, atr in zip(good, self.lip.call_batch(batch), self.atr.call_batch(batch)):
                out[i] = lip_atr_to_cihp(lip, atr)
        return out
