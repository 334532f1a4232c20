"""Layers shared, unchanged, by the StableVITON UNet and its spatial encoder (ldm ``openaimodel``/``attention`` layout).

Attribute names reproduce the official state-dict keys (``in_layers.0``, ``emb_layers.1``, ``out_layers.3``,
``skip_connection``, ``op``, ``conv``, ``norm``, ``proj_in``, ``transformer_blocks.0.attn1.to_q``, ``ff.net.0.proj``,
``proj_out`` …). Attention is PyTorch SDPA; gradient checkpointing is ``torch.utils.checkpoint`` (non-reentrant, so it
works with frozen parameters).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint as _torch_checkpoint


def zero_module(module: nn.Module) -> nn.Module:
    """Set every parameter of ``module`` to zero and return it."""
    for p in module.parameters():
        p.detach().zero_()
    return module


def maybe_checkpoint(fn: Callable[..., torch.Tensor], *args: torch.Tensor | None, enabled: bool) -> torch.Tensor:
    """Run ``fn(*args)`` under activation checkpointing when enabled and autograd is recording."""
    if enabled and torch.is_grad_enabled():
        return _torch_checkpoint(fn, *args, use_reentrant=False)
    return fn(*args)


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32 and cast back to the input dtype (ldm ``normalization``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).type(x.dtype)


def normalization(channels: int) -> GroupNorm32:
    return GroupNorm32(32, channels)


def attn_normalize(channels: int) -> nn.GroupNorm:
    """The transformer-block input norm (ldm ``Normalize``): plain GroupNorm(32, eps 1e-6)."""
    return nn.GroupNorm(num_groups=32, num_channels=channels, eps=1e-6, affine=True)


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: int = 10000) -> torch.Tensor:
    """Sinusoidal embedding ``[cos(t·f_k), sin(t·f_k)]``, ``f_k = exp(-ln(max_period)·k/(dim/2))``; float32."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half)
    args = timesteps[:, None].float() * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


def time_embed_mlp(model_channels: int) -> nn.Sequential:
    """``time_embed``: Linear(mc, 4mc) → SiLU → Linear(4mc, 4mc) (keys ``time_embed.0`` / ``time_embed.2``)."""
    dim = model_channels * 4
    return nn.Sequential(nn.Linear(model_channels, dim), nn.SiLU(), nn.Linear(dim, dim))


class TimestepBlock(nn.Module):
    """A module whose forward takes the timestep embedding as second argument."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError


class TimestepEmbedSequential(nn.Sequential):
    """Sequential that hands ``emb`` to timestep blocks and ``context`` to spatial transformers."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self:
            if isinstance(layer, TimestepBlock):
                x = layer(x, emb)
            elif isinstance(layer, SpatialTransformer):
                x = layer(x, context)
            else:
                x = layer(x)
        return x


class Downsample(nn.Module):
    """Strided 3×3 conv (key ``op``)."""

    def __init__(self, channels: int, out_channels: int | None = None):
        super().__init__()
        self.op = nn.Conv2d(channels, out_channels or channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Upsample(nn.Module):
    """Nearest ×2 then 3×3 conv (key ``conv``)."""

    def __init__(self, channels: int, out_channels: int | None = None):
        super().__init__()
        self.conv = nn.Conv2d(channels, out_channels or channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class ResBlock(TimestepBlock):
    """ldm ResBlock without scale-shift norm: ``skip(x) + out_layers(in_layers(x) + emb_layers(emb))``."""

    def __init__(self, channels: int, emb_channels: int, dropout: float = 0.0, out_channels: int | None = None,
                 use_checkpoint: bool = False):
        super().__init__()
        out_channels = out_channels or channels
        self.in_layers = nn.Sequential(normalization(channels), nn.SiLU(),
                                       nn.Conv2d(channels, out_channels, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, out_channels))
        self.out_layers = nn.Sequential(normalization(out_channels), nn.SiLU(), nn.Dropout(p=dropout),
                                        zero_module(nn.Conv2d(out_channels, out_channels, 3, padding=1)))
        self.skip_connection = (nn.Identity() if out_channels == channels
                                else nn.Conv2d(channels, out_channels, 1))
        self.use_checkpoint = use_checkpoint

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return maybe_checkpoint(self._forward, x, emb, enabled=self.use_checkpoint)

    def _forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.in_layers(x)
        h = h + self.emb_layers(emb).type(h.dtype)[:, :, None, None]
        return self.skip_connection(x) + self.out_layers(h)


class CrossAttention(nn.Module):
    """Multi-head attention with bias-free q/k/v (ldm ``CrossAttention`` keys), computed with SDPA.

    ``return_probs=True`` computes the softmax explicitly (float32, autocast off) and returns the head-resolved
    probabilities ``[B, heads, Nq, Nk]`` too; only the ATV block asks for them.
    """

    def __init__(self, query_dim: int, context_dim: int | None = None, heads: int = 8, dim_head: int = 64,
                 dropout: float = 0.0):
        super().__init__()
        inner = heads * dim_head
        context_dim = context_dim or query_dim
        self.heads = heads
        self.dim_head = dim_head
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim), nn.Dropout(dropout))

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        b, n, _ = t.shape
        return t.reshape(b, n, self.heads, self.dim_head).transpose(1, 2)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                return_probs: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        context = x if context is None else context
        q, k, v = self._split(self.to_q(x)), self._split(self.to_k(context)), self._split(self.to_v(context))
        probs = None
        if return_probs:
            with torch.autocast(device_type=x.device.type, enabled=False):
                sim = torch.matmul(q.float(), k.float().transpose(-1, -2)) * (self.dim_head ** -0.5)
                probs = sim.softmax(dim=-1)
            out = torch.matmul(probs.to(v.dtype), v)
        else:
            out = F.scaled_dot_product_attention(q, k, v)
        b, _, n, _ = out.shape
        out = out.transpose(1, 2).reshape(b, n, self.heads * self.dim_head)
        return self.to_out(out), probs


class GEGLU(nn.Module):
    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, gate = self.proj(x).chunk(2, dim=-1)
        return x * F.gelu(gate)


class FeedForward(nn.Module):
    """GEGLU feed-forward, keys ``net.0.proj`` and ``net.2``."""

    def __init__(self, dim: int, mult: int = 4, dropout: float = 0.0):
        super().__init__()
        inner = dim * mult
        self.net = nn.Sequential(GEGLU(dim, inner), nn.Dropout(dropout), nn.Linear(inner, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class BasicTransformerBlock(nn.Module):
    """self-attn → cross-attn(context) → GEGLU FF, pre-LayerNorm residuals (registration order as ldm)."""

    def __init__(self, dim: int, n_heads: int, d_head: int, dropout: float = 0.0, context_dim: int | None = None,
                 use_checkpoint: bool = False):
        super().__init__()
        self.attn1 = CrossAttention(dim, None, n_heads, d_head, dropout)
        self.ff = FeedForward(dim, dropout=dropout)
        self.attn2 = CrossAttention(dim, context_dim, n_heads, d_head, dropout)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)
        self.use_checkpoint = use_checkpoint

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        return maybe_checkpoint(self._forward, x, context, enabled=self.use_checkpoint)

    def _forward(self, x: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        x = self.attn1(self.norm1(x))[0] + x
        x = self.attn2(self.norm2(x), context)[0] + x
        return self.ff(self.norm3(x)) + x


class SpatialTransformer(nn.Module):
    """GroupNorm → 1×1 conv → transformer blocks on ``h·w`` tokens → zero-init 1×1 conv, residual."""

    def __init__(self, in_channels: int, n_heads: int, d_head: int, depth: int = 1, dropout: float = 0.0,
                 context_dim: int | None = None, use_checkpoint: bool = False):
        super().__init__()
        inner = n_heads * d_head
        self.norm = attn_normalize(in_channels)
        self.proj_in = nn.Conv2d(in_channels, inner, 1)
        self.transformer_blocks = nn.ModuleList(
            [BasicTransformerBlock(inner, n_heads, d_head, dropout, context_dim, use_checkpoint)
             for _ in range(depth)])
        self.proj_out = zero_module(nn.Conv2d(inner, in_channels, 1))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        b, _, h, w = x.shape
        x_in = x
        x = self.proj_in(self.norm(x))
        x = x.flatten(2).transpose(1, 2)
        for block in self.transformer_blocks:
            x = block(x, context)
        x = x.transpose(1, 2).reshape(b, -1, h, w)
        return self.proj_out(x) + x_in


def build_encoder(in_channels: int, model_channels: int, num_res_blocks: int, attention_resolutions: Sequence[int],
                  channel_mult: Sequence[int], num_heads: int, transformer_depth: int, context_dim: int,
                  dropout: float, use_checkpoint: bool) -> tuple[nn.ModuleList, list[int], int, int]:
    """The SD-1.x ``input_blocks``; returns them, the output channels of each block, the last width and ds."""
    emb_dim = model_channels * 4
    blocks = nn.ModuleList([TimestepEmbedSequential(nn.Conv2d(in_channels, model_channels, 3, padding=1))])
    chans = [model_channels]
    ch, ds = model_channels, 1
    for level, mult in enumerate(channel_mult):
        for _ in range(num_res_blocks):
            layers: list[nn.Module] = [ResBlock(ch, emb_dim, dropout, mult * model_channels, use_checkpoint)]
            ch = mult * model_channels
            if ds in attention_resolutions:
                layers.append(SpatialTransformer(ch, num_heads, ch // num_heads, transformer_depth, dropout,
                                                 context_dim, use_checkpoint))
            blocks.append(TimestepEmbedSequential(*layers))
            chans.append(ch)
        if level != len(channel_mult) - 1:
            blocks.append(TimestepEmbedSequential(Downsample(ch)))
            chans.append(ch)
            ds *= 2
    return blocks, chans, ch, ds


def build_middle(ch: int, model_channels: int, num_heads: int, transformer_depth: int, context_dim: int,
                 dropout: float, use_checkpoint: bool) -> TimestepEmbedSequential:
    emb_dim = model_channels * 4
    return TimestepEmbedSequential(
        ResBlock(ch, emb_dim, dropout, use_checkpoint=use_checkpoint),
        SpatialTransformer(ch, num_heads, ch // num_heads, transformer_depth, dropout, context_dim, use_checkpoint),
        ResBlock(ch, emb_dim, dropout, use_checkpoint=use_checkpoint),
    )


def set_checkpointing(module: nn.Module, enabled: bool) -> int:
    """Switch gradient checkpointing of every ResBlock / BasicTransformerBlock below ``module``; returns the count."""
    n = 0
    for m in module.modules():
        if isinstance(m, (ResBlock, BasicTransformerBlock)):
            m.use_checkpoint = enabled
            n += 1
    return n
