"""CLIP image condition (official ``FrozenCLIPImageEmbedder``, Paint-by-Example's).

``transformer.vision_model``: a ``transformers`` CLIP vision tower (ViT-L/14 by default) **built from its config**
(never downloaded; the weights come from the checkpoint). Its ``pooler_output`` (post-LayerNorm CLS token) is one
token [B,1,1024] that goes through ``mapper`` (a 5-block, 1-head GLIDE/``xf`` transformer) and ``final_ln``.
The top-level ``proj_out`` (1024 → 768) is applied by the diffusion model, not here.

transformers ≥ 5 flattened ``CLIPVisionModel`` (no ``.vision_model`` child); a thin holder keeps the official key
prefix ``transformer.vision_model.*`` on every version.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModel

#: openai/clip-vit-large-patch14 vision tower.
VIT_L14: dict[str, Any] = dict(hidden_size=1024, intermediate_size=4096, num_attention_heads=16, num_hidden_layers=24,
                               patch_size=14, image_size=224, num_channels=3, hidden_act="quick_gelu",
                               layer_norm_eps=1e-5, projection_dim=768)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class LayerNorm32(nn.LayerNorm):
    """LayerNorm computed in float32 (xf ``LayerNorm``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).to(x.dtype)


class MapperAttention(nn.Module):
    """xf ``MultiheadAttention``: ``c_qkv`` rows are per head ``[q | k | v]``; scale ``d^-1/2``."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.c_qkv = nn.Linear(width, width * 3)
        self.c_proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, width = x.shape
        qkv = self.c_qkv(x).view(b, n, self.heads, -1)
        q, k, v = (t.transpose(1, 2) for t in qkv.split(width // self.heads, dim=-1))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.c_proj(out.transpose(1, 2).reshape(b, n, width))


class MapperMLP(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.c_fc = nn.Linear(width, width * 4)
        self.c_proj = nn.Linear(width * 4, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.gelu(self.c_fc(x)))


class MapperBlock(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.attn = MapperAttention(width, heads)
        self.ln_1 = LayerNorm32(width)
        self.mlp = MapperMLP(width)
        self.ln_2 = LayerNorm32(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class Mapper(nn.Module):
    """xf ``Transformer(n_ctx=1, width, layers, heads)``: keys ``resblocks.i.*``."""

    def __init__(self, width: int, layers: int, heads: int):
        super().__init__()
        self.resblocks = nn.ModuleList([MapperBlock(width, heads) for _ in range(layers)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x)
        return x


class _VisionHolder(nn.Module):
    """Holds a transformers ≥ 5 ``CLIPVisionModel`` under the name ``vision_model``."""

    def __init__(self, vision_model: nn.Module):
        super().__init__()
        self.vision_model = vision_model


def build_clip_vision(config: dict[str, Any] | None = None) -> nn.Module:
    """A randomly initialised CLIP vision tower whose state-dict keys start with ``vision_model.``."""
    unknown = set(config or {}) - set(VIT_L14)
    if unknown:
        raise ValueError(f"CLIP vision_config: unknown keys {sorted(unknown)} (known: {sorted(VIT_L14)})")
    cfg = CLIPVisionConfig(**{**VIT_L14, **(config or {})})
    cfg._attn_implementation = "sdpa"
    model = CLIPVisionModel(cfg)
    return model if hasattr(model, "vision_model") else _VisionHolder(model)


class CLIPImageCondition(nn.Module):
    """Typed config: ``vision_config`` (overrides of :data:`VIT_L14`), ``mapper_layers`` (5), ``mapper_heads`` (1)."""

    def __init__(self, vision_config: dict[str, Any] | None = None, mapper_layers: int = 5, mapper_heads: int = 1):
        super().__init__()
        self.transformer = build_clip_vision(vision_config)
        cfg = self.transformer.vision_model.config
        self.width = cfg.hidden_size
        self.image_size = cfg.image_size
        self.final_ln = LayerNorm32(self.width)
        self.mapper = Mapper(self.width, mapper_layers, mapper_heads)
        self.register_buffer("clip_mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("clip_std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        """[-1,1] image [B,3,H,W] → CLIP input: bilinear resize to the square CLIP size without antialias (no crop,
        aspect not kept, as officially), ``(x+1)/2``, CLIP mean/std."""
        x = F.interpolate(image.float(), size=(self.image_size, self.image_size), mode="bilinear",
                          align_corners=False, antialias=False)
        return ((x + 1) / 2 - self.clip_mean) / self.clip_std

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Preprocessed CLIP input [B,3,S,S] → condition token [B,1,width]."""
        z = self.transformer.vision_model(pixel_values=pixel_values).pooler_output
        return self.final_ln(self.mapper(z.unsqueeze(1)))
