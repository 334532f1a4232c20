"""Evaluation of try-on images with a pinned protocol (docs/evaluation.md): SSIM, LPIPS, FID and KID via torchmetrics.

``extractors`` (InceptionV3, LPIPS and their weights files), ``protocol`` (sizes, resize rule, the report's protocol
section), ``metrics`` (SSIM/LPIPS on pairs, FID/KID on features) and ``run`` (real images, generated lists, the
report). Nothing here downloads: every weights file is one the user names, and a missing file is an error before
any image is read.
"""

from vitontrain.evaluation.extractors import (
    FEATURE_DIM,
    FEATURE_DIMS,
    LPIPS_NETS,
    REFERENCE_SHA256_PREFIX,
    InceptionFeatures,
    WeightsError,
    build_inception,
    build_lpips,
    default_lpips_linear_path,
    sha256_file,
)
from vitontrain.evaluation.metrics import fid_kid, ssim_lpips
from vitontrain.evaluation.protocol import RESIZE_FILTERS, EvalProtocol, ResizeCounter
from vitontrain.evaluation.run import EvalInput, evaluate_run, read_generated, real_person_images

__all__ = ["FEATURE_DIM", "FEATURE_DIMS", "LPIPS_NETS", "REFERENCE_SHA256_PREFIX", "RESIZE_FILTERS", "EvalInput",
           "EvalProtocol", "InceptionFeatures", "ResizeCounter", "WeightsError", "build_inception", "build_lpips",
           "default_lpips_linear_path", "evaluate_run", "fid_kid", "read_generated", "real_person_images",
           "sha256_file", "ssim_lpips"]
