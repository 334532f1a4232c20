"""Zero cross-attention block (official ``CustomSpatialTransformer`` in ``cldm/warping_cldm_network.py``).

Queries are UNet-decoder features, keys/values the spatial-encoder feature map of the same skip level. Keys:
``norm``, ``proj_in``, ``transformer_blocks.0.{attn1,ff,attn2,norm1,norm2,norm3}``, ``proj_out`` (zero-init), exactly
like an ldm SpatialTransformer whose cross-attention context has ``context_dim`` = the encoder width. No timestep,
no gradient checkpointing (as officially). The 1×1 zero conv that follows (``warp_zero_convs.i``) lives in the UNet.
"""

from __future__ import annotations

import torch
from torch import nn

from vitontrain.models.atv import attention_tv_loss
from vitontrain.models.blocks import BasicTransformerBlock, attn_normalize, zero_module


class ZeroCrossAttentionBlock(BasicTransformerBlock):
    """``x += attn1(LN1 x)``; ``x += attn2(LN2 x, encoder tokens)``; ``x += FF(LN3 x)``; returns attn2 probs on demand.

    Same modules (and so the same keys) as ldm's BasicTransformerBlock; only the forward differs.
    """

    def __init__(self, dim: int, n_heads: int, d_head: int, context_dim: int, dropout: float = 0.0):
        super().__init__(dim, n_heads, d_head, dropout, context_dim, use_checkpoint=False)

    def forward(self, x: torch.Tensor, context: torch.Tensor,
                return_probs: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = self.attn1(self.norm1(x))[0] + x
        out, probs = self.attn2(self.norm2(x), context, return_probs=return_probs)
        x = out + x
        return self.ff(self.norm3(x)) + x, probs


class ZeroCrossAttention(nn.Module):
    """One ``warp_flow_blks.i``: ``y = x + proj_out(blocks(proj_in(norm(x)), encoder tokens))``.

    ``atv``: whether this block computes the ATV loss when a region mask is given (officially only block 4, the
    32×24 one; the official gate is "use_loss and 700 < key tokens < 3000", which depends on the resolution).
    """

    def __init__(self, in_channels: int, n_heads: int, d_head: int, context_dim: int, depth: int = 1,
                 dropout: float = 0.0, atv: bool = False):
        super().__init__()
        inner = n_heads * d_head
        self.norm = attn_normalize(in_channels)
        self.proj_in = nn.Conv2d(in_channels, inner, 1)
        self.transformer_blocks = nn.ModuleList(
            [ZeroCrossAttentionBlock(inner, n_heads, d_head, context_dim, dropout) for _ in range(depth)])
        self.proj_out = zero_module(nn.Conv2d(inner, in_channels, 1))
        self.atv = atv

    def forward(self, x: torch.Tensor, hint: torch.Tensor,
                atv_region: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x`` [B,C,h,w] decoder feature; ``hint`` [B,Cc,hk,wk] encoder feature; ``atv_region`` [B,1,H,W] mask.

        Returns ``(x + Δ, tv)`` where ``tv`` is the unweighted ATV loss of this block, or None.
        """
        b, _, h, w = x.shape
        hk, wk = hint.shape[-2:]
        tokens = hint.flatten(2).transpose(1, 2)
        want_atv = self.atv and atv_region is not None
        x_in = x
        x = self.proj_in(self.norm(x)).flatten(2).transpose(1, 2)
        tv = None
        for block in self.transformer_blocks:
            x, probs = block(x, tokens, return_probs=want_atv)
            if probs is not None:
                block_tv = attention_tv_loss(probs, atv_region, (h, w), (hk, wk))
                tv = block_tv if tv is None else tv + block_tv
        x = x.transpose(1, 2).reshape(b, -1, h, w)
        return self.proj_out(x) + x_in, tv
