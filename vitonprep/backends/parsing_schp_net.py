"""The SCHP network (AugmentCE2P: ResNet-101 + PSP + edge + decoder + fusion heads) in plain PyTorch, and its
strict loading from the official ``exp-schp-*.pth`` files.

Module and attribute names follow the original ``networks/AugmentCE2P.py`` so that the official state-dict keys
(``module.`` prefix stripped) load as-is, strictly. Only imported when the SCHP back-end is chosen (it imports
torch).

The original network uses InPlaceABN, a CUDA/C++ extension that builds neither for CUDA nor for CPU under torch 2.x.
`ABN` here is the same computation as that extension's CPU kernel in inference mode: batch norm with the running
statistics whose scale is ``|weight| + eps`` (not ``weight``: InPlaceABN keeps the scale positive so that it can
invert the affine in its backward pass), then leaky ReLU where the original asks for it. A plain
``nn.BatchNorm2d`` swap is not exact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from vitonprep.weights import read_torch_weights

__all__ = ["ABN_EPS", "ABN_SLOPE", "RESNET101_LAYERS", "ABN", "SCHPNet", "schp_net", "read_schp_state_dict",
           "load_into", "load_schp"]

# InPlaceABN's kernel takes eps and the leaky-ReLU slope as C++ floats: 1e-5 and 0.01 rounded to float32
# (0.009999999776...). In float64, Python's 0.01 as slope differs from the compiled original by ~1e-7 absolute
# (tests/fixtures/parity/README.md); in float32 both round to the same value.
ABN_EPS = float(np.float32(1e-5))
ABN_SLOPE = float(np.float32(0.01))
#: ResNet-101 block counts
RESNET101_LAYERS = (3, 4, 23, 3)


class ABN(nn.Module):
    """Inference-mode InPlaceABN: (x - mean) * rsqrt(var + eps) * (|w| + eps) + b, then leaky ReLU (slope
    ``ABN_SLOPE``) or nothing.

    Parameter and buffer names are InPlaceABN's (no ``num_batches_tracked``), so the official keys load as-is.
    """

    def __init__(self, num_features: int, activation: str = "leaky_relu", slope: float = ABN_SLOPE):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.activation = activation
        self.slope = slope

    def forward(self, x):
        shape = (1, -1, 1, 1)
        mul = torch.rsqrt(self.running_var + ABN_EPS) * (self.weight.abs() + ABN_EPS)
        x = (x - self.running_mean.view(shape)) * mul.view(shape) + self.bias.view(shape)
        if self.activation == "leaky_relu":
            x = F.leaky_relu(x, negative_slope=self.slope)
        return x


def _bn(n):  # the backbone's batch norms have no activation (a ReLU follows where needed)
    return ABN(n, activation="none")


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, dilation=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = _bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = _bn(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = _bn(planes * 4)
        self.downsample = downsample

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        residual = x if self.downsample is None else self.downsample(x)
        return F.relu(out + residual)


def _up(x, hw):
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
        priors = [_up(stage(feats), hw) for stage in self.stages] + [feats]
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
        e1, e2, e3 = self.conv4(f1), _up(self.conv4(f2), hw), _up(self.conv4(f3), hw)
        edge = self.conv5(torch.cat([e1, e2, e3], 1))
        return edge, torch.cat([f1, _up(f2, hw), _up(f3, hw)], 1)


class DecoderModule(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(512, 256, 1, bias=False), ABN(256))
        self.conv2 = nn.Sequential(nn.Conv2d(256, 48, 1, bias=False), ABN(48))
        self.conv3 = nn.Sequential(nn.Conv2d(304, 256, 1, bias=False), ABN(256),
                                   nn.Conv2d(256, 256, 1, bias=False), ABN(256))
        self.conv4 = nn.Conv2d(256, num_classes, 1, bias=True)

    def forward(self, xt, xl):
        xt = _up(self.conv1(xt), xl.shape[2:])
        x = self.conv3(torch.cat([xt, self.conv2(xl)], 1))
        return self.conv4(x), x


class SCHPNet(nn.Module):
    """AugmentCE2P ResNet; forward returns (parsing, fusion, edge) logits at 1/4 of the input size."""

    def __init__(self, num_classes: int, layers: tuple[int, int, int, int] = RESNET101_LAYERS):
        super().__init__()
        self.inplanes = 128
        self.conv1 = nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False)
        self.bn1 = _bn(64)
        self.conv2 = nn.Conv2d(64, 64, 3, padding=1, bias=False)
        self.bn2 = _bn(64)
        self.conv3 = nn.Conv2d(64, 128, 3, padding=1, bias=False)
        self.bn3 = _bn(128)
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
                                       _bn(planes * 4))
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


def schp_net(num_classes: int, layers: tuple[int, int, int, int] = RESNET101_LAYERS):
    """A randomly initialised SCHP network (``layers`` other than ResNet-101's only for tests)."""
    return SCHPNet(num_classes, tuple(layers))


def read_schp_state_dict(path: str | Path) -> dict[str, Any]:
    """The tensors of an official ``exp-schp-*.pth`` (``{"state_dict": {"module.<key>": tensor}}``), keys unprefixed.

    Loaded with ``weights_only=True``: the file is a pickle, and nothing but tensors and plain containers is accepted.
    """
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
