"""Attention total variation (ATV) loss, StableVITON paper §3.3 (official ``ldm/models/diffusion/ddpm.py``), for
any grid shape.

The official code recovers the query/key grids from token counts assuming a 4:3 aspect (``dx = sqrt(HW/12)``,
``h = 4dx, w = 3dx``), so it is wrong or crashes at any other aspect ratio. Here the grid shapes are passed in
explicitly; at 4:3 the numbers are identical to the official ones.

Algorithm (unchanged): average the cross-attention probabilities over heads; for every query take the expected key
position ``F = Σ_ij Ā[ij]·(i, j)`` in un-normalised key-grid coordinates (row, col); sum ``|F(p) − F(p')|`` over
vertically and horizontally adjacent query pairs that both lie inside the warped-cloth region, each direction divided
by its number of pairs in the whole batch (a batch-level mean).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def region_on_grid(mask: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """``mask`` [B,1,H,W] (1 = warped-cloth region, any resolution) → bool [B,h,w] by nearest resize, ``> 0.5``.

    Same as the official ``~attn_mask_resize(1 - m)`` (nearest, ``1 - m >= 0.5`` negated).
    """
    if mask.ndim != 4 or mask.shape[1] != 1:
        raise ValueError(f"ATV region mask must be [B,1,H,W], got {tuple(mask.shape)}")
    return F.interpolate(mask.float(), size=hw, mode="nearest")[:, 0] > 0.5


def attention_centers(attn: torch.Tensor, key_hw: tuple[int, int]) -> torch.Tensor:
    """Expected key-grid coordinate per query. ``attn``: [B, heads, Nq, Nk] or head-averaged [B, Nq, Nk].

    Returns [B, Nq, 2] with (row, col) in key-grid units.
    """
    if attn.ndim == 4:
        attn = attn.mean(dim=1)
    if attn.ndim != 3:
        raise ValueError(f"attention map must be [B,heads,Nq,Nk] or [B,Nq,Nk], got {tuple(attn.shape)}")
    hk, wk = key_hw
    if attn.shape[-1] != hk * wk:
        raise ValueError(f"attention map has {attn.shape[-1]} keys, key grid {hk}x{wk} has {hk * wk}")
    a = attn.float().reshape(attn.shape[0], attn.shape[1], hk, wk)
    rows = torch.arange(hk, dtype=torch.float32, device=attn.device)
    cols = torch.arange(wk, dtype=torch.float32, device=attn.device)
    row_c = (a.sum(dim=3) * rows).sum(dim=2)
    col_c = (a.sum(dim=2) * cols).sum(dim=2)
    return torch.stack([row_c, col_c], dim=-1)


def attention_tv_loss(attn: torch.Tensor, region: torch.Tensor, query_hw: tuple[int, int],
                      key_hw: tuple[int, int]) -> torch.Tensor:
    """Unweighted ATV loss (the model multiplies it by ``atv_weight``, 0.001 officially).

    ``attn``: attention probabilities [B, heads, Nq, Nk] or [B, Nq, Nk]; ``region``: bool [B, hq, wq] (True inside
    the warped cloth) or a float [B,1,H,W] mask that is resized with :func:`region_on_grid`.

    A direction with no adjacent in-region pair contributes 0 (the official code divides by zero and returns NaN
    for a batch without any warped-cloth pixels).
    """
    hq, wq = query_hw
    if region.ndim == 4:
        region = region_on_grid(region, query_hw)
    if region.shape[-2:] != (hq, wq):
        raise ValueError(f"region is {tuple(region.shape[-2:])}, query grid is {hq}x{wq}")
    centers = attention_centers(attn, key_hw)
    b = centers.shape[0]
    if centers.shape[1] != hq * wq:
        raise ValueError(f"attention map has {centers.shape[1]} queries, query grid {hq}x{wq} has {hq * wq}")
    c = centers.reshape(b, hq, wq, 2)
    m = region.to(torch.bool)
    vy = (m[:, 1:, :] & m[:, :-1, :]).unsqueeze(-1).to(c.dtype)
    vx = (m[:, :, 1:] & m[:, :, :-1]).unsqueeze(-1).to(c.dtype)
    ty = ((c[:, 1:, :] - c[:, :-1, :]).abs() * vy).sum() / vy.sum().clamp_min(1.0)
    tx = ((c[:, :, 1:] - c[:, :, :-1]).abs() * vx).sum() / vx.sum().clamp_min(1.0)
    return ty + tx
