"""The feature extractors of the evaluation protocol and the weights files they read (nothing is downloaded).

* **FID / KID**: torch-fidelity's TF-ported InceptionV3 (torchmetrics ``NoTrainInceptionV3``, ``inception-v3-compat``,
  2048-d pool features) loaded from the user's file (the FID weights ``weights-inception-2015-12-05-6726825d.pth``),
  resized to 299×299 with the TF1-compatible bilinear interpolation (``antialias=False``, as torch-fidelity and the
  original TF FID do).
* **LPIPS**: torchmetrics' LPIPS network (``_NoTrainLpips``, ``net="alex"`` by default, version 0.1) built with
  ``pnet_rand=True`` (no torchvision download), its backbone loaded from the user's torchvision state dict
  (``features.*`` keys, e.g. ``alexnet-owt-7be5be79.pth``); the linear heads are torchmetrics' bundled LPIPS v0.1
  file unless another path is given.

Every weights file is read with ``torch.load(weights_only=True)``; torchmetrics and torch-fidelity, which unpickle
fully, only ever get the tensors re-serialised in memory.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

LPIPS_NETS = ("alex", "vgg", "squeeze")
FEATURE_DIM = 2048
#: Inception feature layers torch-fidelity exposes; 2048 (pool3) is the FID/KID standard, the others exist for fast
#: tests and are recorded in the report (numbers at another dimension are not comparable with published ones).
FEATURE_DIMS = (64, 192, 768, 2048)
#: sha256 prefixes of the reference weights files (torch hub naming: the 8 hex digits in the file name):
#: torch-fidelity's weights-inception-2015-12-05-6726825d.pth and torchvision's ImageNet backbones.
REFERENCE_SHA256_PREFIX = {"inception": "6726825d", "alex": "7be5be79", "vgg": "397923af", "squeeze": "b8a52dc0"}


class WeightsError(FileNotFoundError):
    """A weights file is missing or does not contain what the metric needs."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_weights(path: Path | str, what: str) -> dict[str, torch.Tensor]:
    """A plain state dict of tensors from ``path``, read weights-only; anything else is a :class:`WeightsError`."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{what} weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # an unreadable or unsafe pickle: say which file and why (first line: torch's are long)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise WeightsError(f"{what} weights {path}: refusing to load — not a plain state dict of tensors "
                           f"(torch.load weights_only=True: {first})") from exc
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{what} weights {path}: not a state dict of tensors")
    return obj



def build_inception(weights: Path | str, feature_dim: int = FEATURE_DIM) -> nn.Module:
    """torch-fidelity's FID InceptionV3 (2048-d pool features by default) with the user's weights; never downloads."""
    from torchmetrics.image.fid import NoTrainInceptionV3  # third-party and heavy: imported when a metric needs it

    if feature_dim not in FEATURE_DIMS:
        raise ValueError(f"Inception feature dimension {feature_dim}: choose one of {FEATURE_DIMS}")
    # torch-fidelity loads its weights with a full unpickler (weights_only=False): it gets the tensors we read
    # weights-only, re-serialised in memory, never the user's file.
    state = io.BytesIO()
    torch.save(read_weights(weights, "InceptionV3 (FID/KID)"), state)
    state.seek(0)
    try:
        net = NoTrainInceptionV3("inception-v3-compat", [str(feature_dim)], state, antialias=False)
    except RuntimeError as exc:
        raise WeightsError(f"InceptionV3 weights {weights}: do not fit torch-fidelity's InceptionV3 ({exc})") from exc
    return net.eval()


def build_lpips(backbone_weights: Path | str, linear_weights: Path | str | None = None, net: str = "alex"
                ) -> nn.Module:
    """torchmetrics' LPIPS network with the backbone from a torchvision state dict (``features.*``)."""
    from torchmetrics.functional.image.lpips import _NoTrainLpips  # third-party and heavy: imported on use

    if net not in LPIPS_NETS:
        raise ValueError(f"LPIPS net {net!r}: choose one of {LPIPS_NETS}")
    backbone = read_weights(backbone_weights, f"LPIPS {net} backbone")
    linear = None
    if linear_weights is not None:
        # torchmetrics reads it with torch.load's default unpickler (a full one under TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD):
        # it gets the tensors we read weights-only, re-serialised in memory
        linear = io.BytesIO()
        torch.save(read_weights(linear_weights, "LPIPS linear-layer"), linear)
        linear.seek(0)
    # pnet_rand=True: the torchvision backbone is built without weights (no download); ours are loaded below.
    model = _NoTrainLpips(pretrained=True, net=net, pnet_rand=True, model_path=linear)
    # The LPIPS slices hold torchvision's ``features`` layers under their original indices.
    mapped, missing = {}, []
    for name, _ in model.net.named_parameters():
        _slice, index, pname = name.split(".", 2)
        key = f"features.{index}.{pname}"
        if key not in backbone:
            missing.append(key)
        else:
            mapped[name] = backbone[key]
    if missing:
        raise WeightsError(f"LPIPS {net} backbone {backbone_weights}: missing {missing[:4]}… — expected a "
                           f"torchvision {net} state dict with 'features.*' keys")
    try:
        model.net.load_state_dict(mapped, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"LPIPS {net} backbone {backbone_weights}: shapes do not fit ({exc})") from exc
    return model.eval()


def default_lpips_linear_path(net: str = "alex") -> Path:
    """The LPIPS v0.1 linear heads bundled with torchmetrics (no download)."""
    import torchmetrics.functional.image.lpips as tm_lpips  # third-party and heavy: imported on use

    return Path(tm_lpips.__file__).parent / "lpips_models" / f"{net}.pth"



def to_tensor(images: Sequence[np.ndarray]) -> torch.Tensor:
    """HWC uint8 list → NCHW uint8 tensor."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()



class InceptionFeatures:
    """2048-d Inception features of uint8 image batches, batched, computed on ``device`` (features come back on the
    CPU in float64, where FID/KID are computed)."""

    def __init__(self, net: nn.Module, batch_size: int = 16, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.net = net.to(self.device)
        self.batch_size = batch_size

    @torch.no_grad()
    def __call__(self, images: Sequence[np.ndarray], progress: Callable[[int], None] | None = None) -> torch.Tensor:
        feats = []
        for i in range(0, len(images), self.batch_size):
            chunk = images[i:i + self.batch_size]
            out = self.net(to_tensor(chunk).to(self.device, non_blocking=True))
            feats.append(out.double().cpu().reshape(len(chunk), -1))
            if progress is not None:
                progress(len(chunk))
        if not feats:
            raise ValueError("no images to extract features from")
        return torch.cat(feats)

