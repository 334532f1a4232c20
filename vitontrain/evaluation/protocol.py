"""The evaluation protocol: image size and resize rule, extractor settings, KID subsets, and the description of all
of it (with the weights files' sha256) written into every report.

* **Images**: RGB uint8 at the protocol size H×W (default 512×384, the model's output size). An image of another
  size is resized with PIL (default ``bicubic``, antialiased when shrinking); the report counts how many images were
  shrunk or enlarged, per side.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from vitontrain.evaluation.extractors import (
    FEATURE_DIM,
    FEATURE_DIMS,
    REFERENCE_SHA256_PREFIX,
    WeightsError,
    default_lpips_linear_path,
    read_weights,
    sha256_file,
)

RESIZE_FILTERS = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR,
                  "lanczos": Image.Resampling.LANCZOS, "box": Image.Resampling.BOX}


@dataclass(frozen=True)
class EvalProtocol:
    height: int = 512
    width: int = 384
    resize_filter: str = "bicubic"
    inception_weights: Path | None = None
    lpips_backbone_weights: Path | None = None
    lpips_linear_weights: Path | None = None
    lpips_net: str = "alex"
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    feature_dim: int = FEATURE_DIM
    batch_size: int = 16

    def __post_init__(self) -> None:
        if self.resize_filter not in RESIZE_FILTERS:
            raise ValueError(f"resize filter {self.resize_filter!r}: choose one of {sorted(RESIZE_FILTERS)}")
        if self.feature_dim not in FEATURE_DIMS:
            raise ValueError(f"feature_dim {self.feature_dim}: choose one of {FEATURE_DIMS}")

    def check_files(self, need_inception: bool = True, need_lpips: bool = True) -> None:
        """Fail before reading any image when a weights file is missing."""
        if need_inception:
            if self.inception_weights is None:
                raise WeightsError("FID/KID need the InceptionV3 weights file (--inception-weights)")
            if not Path(self.inception_weights).is_file():
                raise WeightsError(f"InceptionV3 (FID/KID) weights file not found: {self.inception_weights}")
        if need_lpips:
            if self.lpips_backbone_weights is None:
                raise WeightsError("LPIPS needs the backbone weights file (--lpips-weights)")
            if not Path(self.lpips_backbone_weights).is_file():
                raise WeightsError(f"LPIPS backbone weights file not found: {self.lpips_backbone_weights}")
            if self.lpips_linear_weights is not None and not Path(self.lpips_linear_weights).is_file():
                raise WeightsError(f"LPIPS linear-layer weights file not found: {self.lpips_linear_weights}")
        # Every file read as weights only, before any image: an unsafe pickle is refused here, by name.
        if need_inception:
            read_weights(self.inception_weights, "InceptionV3 (FID/KID)")
        if need_lpips:
            read_weights(self.lpips_backbone_weights, f"LPIPS {self.lpips_net} backbone")
            if self.lpips_linear_weights is not None:
                read_weights(self.lpips_linear_weights, "LPIPS linear-layer")

    def describe(self) -> dict[str, Any]:
        """The protocol as written into every report, with the weights files' sha256."""
        import torchmetrics  # third-party and heavy: imported when a report is written

        try:
            import torch_fidelity
            tf_version = torch_fidelity.__version__
        except ImportError:  # pragma: no cover - torch-fidelity is a dependency of FID here
            tf_version = None
        linear = self.lpips_linear_weights or default_lpips_linear_path(self.lpips_net)

        def file_info(p: Path | None, reference: str | None = None) -> dict[str, Any] | None:
            if p is None:
                return None
            info: dict[str, Any] = {"path": str(p), "sha256": sha256_file(Path(p))}
            if reference is not None:
                # False means: not the reference file, numbers are not comparable with published ones
                info["is_reference_file"] = info["sha256"].startswith(reference)
            return info

        return {
            "image_size_hw": [self.height, self.width],
            "resize": {"filter": f"PIL {self.resize_filter}", "when": "any image not at image_size_hw, real or "
                       "generated; directions are counted in 'resized'"},
            "ssim": {"impl": "torchmetrics StructuralSimilarityIndexMeasure", "gaussian_kernel": True,
                     "kernel_size": 11, "sigma": 1.5, "k1": 0.01, "k2": 0.03, "data_range": 1.0,
                     "input": "RGB float [0,1]"},
            "lpips": {"impl": "torchmetrics _NoTrainLpips (LPIPS v0.1)", "net": self.lpips_net,
                      "backbone_weights": file_info(self.lpips_backbone_weights,
                                                    REFERENCE_SHA256_PREFIX[self.lpips_net]),
                      "linear_weights": file_info(linear), "input": "RGB float [-1,1]"},
            "fid_kid": {"impl": "torchmetrics FrechetInceptionDistance / KernelInceptionDistance",
                        "extractor": "torch-fidelity InceptionV3 'inception-v3-compat'",
                        "feature_dim": self.feature_dim, "standard_feature_dim": self.feature_dim == FEATURE_DIM,
                        "extractor_resize": "299x299, TF1-compatible bilinear (antialias=False)",
                        "weights": file_info(self.inception_weights, REFERENCE_SHA256_PREFIX["inception"]),
                        "input": "RGB uint8",
                        "kid": {"subsets": self.kid_subsets, "subset_size": f"min({self.kid_subset_size}, n)",
                                "degree": 3, "gamma": "1/d", "coef": 1.0, "subset_seed": 0}},
            "versions": {"torch": torch.__version__, "torchmetrics": torchmetrics.__version__,
                         "torch_fidelity": tf_version},
        }


@dataclass
class ResizeCounter:
    shrunk: int = 0
    enlarged: int = 0
    kept: int = 0

    def load(self, path_or_array: Path | np.ndarray, height: int, width: int, resample: int) -> np.ndarray:
        img = (Image.open(path_or_array) if isinstance(path_or_array, Path)
               else Image.fromarray(np.asarray(path_or_array)))
        img = img.convert("RGB")
        if img.size == (width, height):
            self.kept += 1
        else:
            if img.width >= width and img.height >= height:
                self.shrunk += 1
            else:
                self.enlarged += 1
            img = img.resize((width, height), resample)
        return np.asarray(img)

