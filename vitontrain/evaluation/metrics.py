"""The metrics: SSIM and LPIPS on aligned (generated, real) pairs, FID and KID on two feature sets, via torchmetrics.

* **SSIM** (paired): ``torchmetrics.image.StructuralSimilarityIndexMeasure`` — Gaussian window 11, σ 1.5,
  k1 0.01, k2 0.03, ``data_range`` 1.0 on RGB in [0,1], mean over channels, pixels and images.
* **LPIPS** (paired): inputs in [-1,1], mean over images (the network: :mod:`vitontrain.evaluation.extractors`).
* **FID / KID** (paired and unpaired): Inception features computed once per image and fed to
  ``FrechetInceptionDistance`` and ``KernelInceptionDistance`` (subsets 100, subset size min(1000, n), polynomial
  kernel degree 3, γ = 1/d, coef 1).
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from vitontrain.evaluation.extractors import FEATURE_DIM, to_tensor


class _Identity(nn.Module):
    """Feature "extractor" for torchmetrics when features are computed once outside (shared by FID and KID)."""

    num_features = FEATURE_DIM

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x



def fid_kid(real_feats: torch.Tensor, fake_feats: torch.Tensor, subsets: int = 100, subset_size: int = 1000,
            seed: int = 0) -> dict[str, float]:
    """FID and KID of two feature sets with torchmetrics (KID subsets drawn with a fixed torch seed)."""
    # third-party and heavy: imported when a metric is computed
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    n = min(len(real_feats), len(fake_feats))
    if n < 2:
        raise ValueError(f"FID/KID need at least 2 real and 2 generated images (got {len(real_feats)} real, "
                         f"{len(fake_feats)} generated)")
    dim = real_feats.shape[1]
    ident = _Identity()
    ident.num_features = dim
    fid = FrechetInceptionDistance(feature=ident)
    fid.update(real_feats.double(), real=True)
    fid.update(fake_feats.double(), real=False)
    size = min(subset_size, n)
    with warnings.catch_warnings():
        # "will save all extracted features in buffer": expected, features are 2048 floats per image
        warnings.filterwarnings("ignore", message=".*save all extracted features.*")
        kid = KernelInceptionDistance(feature=ident, subsets=subsets, subset_size=size)
    kid.update(real_feats.double(), real=True)
    kid.update(fake_feats.double(), real=False)
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)  # KID draws its subsets with torch's global RNG: pin it, then restore
    try:
        kid_mean, kid_std = kid.compute()
    finally:
        torch.random.set_rng_state(state)
    return {"fid": float(fid.compute()), "kid_mean": float(kid_mean), "kid_std": float(kid_std),
            "kid_subset_size": size}


@torch.no_grad()
def ssim_lpips(fake: Sequence[np.ndarray], real: Sequence[np.ndarray], lpips_net: nn.Module | None,
               batch_size: int = 16, progress: Callable[[int], None] | None = None,
               device: torch.device | str = "cpu") -> dict[str, Any]:
    """Mean SSIM (and LPIPS when a network is given) over aligned pairs of uint8 HWC images. LPIPS runs on
    ``device``; SSIM stays on the CPU in float64 (cheap, and exact to ~1e-12 whatever the device)."""
    from torchmetrics.image import StructuralSimilarityIndexMeasure  # third-party and heavy: imported on use

    if len(fake) != len(real):
        raise ValueError(f"paired metrics need aligned lists ({len(fake)} generated, {len(real)} real)")
    ssim = StructuralSimilarityIndexMeasure(gaussian_kernel=True, kernel_size=11, sigma=1.5, k1=0.01, k2=0.03,
                                            data_range=1.0, reduction="none")
    ssim_scores, lpips_scores = [], []
    for i in range(0, len(fake), batch_size):
        # float64: SSIM of identical images is then 1 to ~1e-12 (float32 leaves ~1e-4 of cancellation error)
        f = to_tensor(fake[i:i + batch_size]).double() / 255.0
        r = to_tensor(real[i:i + batch_size]).double() / 255.0
        ssim_scores.append(ssim(f, r).reshape(-1).double())
        if lpips_net is not None:
            lp = lpips_net.to(device)(f.float().to(device) * 2 - 1, r.float().to(device) * 2 - 1)
            lpips_scores.append(lp.reshape(-1).double().cpu())
        if progress is not None:
            progress(len(f))
    out: dict[str, Any] = {"ssim": float(torch.cat(ssim_scores).mean())}
    if lpips_net is not None:
        out["lpips"] = float(torch.cat(lpips_scores).mean())
    return out

