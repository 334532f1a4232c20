"""Spatial encoder (official ``NoZeroConvControlNet`` in ``cldm/warping_cldm_network.py``).

A trainable copy of the UNet encoder (13-channel conv_in, input_blocks 0–11, middle block, own ``time_embed``) that
also receives the VAE latent of the in-shop cloth through one zero-initialised 3×3 conv ``cond_first_block.0``
(4 → model_channels), added to the output of ``input_blocks[0]``. It returns the feature map of every input block
plus the middle block (13 maps officially); there are no output zero convs and no ``input_hint_block``.

Keys: ``time_embed``, ``input_blocks``, ``cond_first_block``, ``middle_block`` (official registration order).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from vitontrain.models.blocks import (
    TimestepEmbedSequential,
    build_encoder,
    build_middle,
    time_embed_mlp,
    timestep_embedding,
    zero_module,
)


class SpatialEncoder(nn.Module):
    """Typed config = the official ``control_stage_config.params``.

    ``image_size`` and ``hint_channels`` are unused officially too and accepted only for config parity;
    ``cond_first_ch`` is the cloth-latent channel count (4).
    """

    def __init__(
        self,
        in_channels: int = 13,
        model_channels: int = 320,
        attention_resolutions: Sequence[int] = (4, 2, 1),
        num_res_blocks: int = 2,
        channel_mult: Sequence[int] = (1, 2, 4, 4),
        num_heads: int = 8,
        transformer_depth: int = 1,
        context_dim: int = 768,
        dropout: float = 0.0,
        use_checkpoint: bool = True,
        cond_first_ch: int = 4,
        use_spatial_transformer: bool = True,
        legacy: bool = False,
        image_size: int | None = None,
        hint_channels: int | None = None,
    ):
        super().__init__()
        if not use_spatial_transformer:
            raise ValueError("SpatialEncoder: use_spatial_transformer must be True")
        del legacy, image_size, hint_channels
        self.model_channels = model_channels
        self.time_embed = time_embed_mlp(model_channels)
        self.input_blocks, self.output_channels, ch, _ = build_encoder(
            in_channels, model_channels, num_res_blocks, attention_resolutions, channel_mult, num_heads,
            transformer_depth, context_dim, dropout, use_checkpoint)
        self.cond_first_block = TimestepEmbedSequential(
            zero_module(nn.Conv2d(cond_first_ch, model_channels, 3, padding=1)))
        self.middle_block = build_middle(ch, model_channels, num_heads, transformer_depth, context_dim, dropout,
                                         use_checkpoint)
        self.output_channels = list(self.output_channels) + [ch]

    def forward(self, x: torch.Tensor, hint: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor,
                num_outputs: int | None = None) -> list[torch.Tensor | None]:
        """``x`` [B,13,h,w] (the UNet input), ``hint`` [B,4,h,w] cloth latent, ``context`` [B,1,768].

        Returns one feature map per input block plus the middle block (``len(input_blocks) + 1`` entries).
        ``num_outputs = n`` computes only the first n input blocks (the later entries are None): the outputs
        the UNet never reads need not be computed — the result for the used ones is identical.
        """
        total = len(self.input_blocks) + 1
        n = total if num_outputs is None else num_outputs
        if not 1 <= n <= total:
            raise ValueError(f"num_outputs must be in 1..{total}, got {n}")
        emb = self.time_embed(timestep_embedding(timesteps, self.model_channels))
        guided = self.cond_first_block(hint, emb, context)
        outs: list[torch.Tensor | None] = []
        h = x
        for i, block in enumerate(self.input_blocks[: min(n, total - 1)]):
            h = block(h, emb, context)
            if i == 0:
                h = h + guided
            outs.append(h)
        if n == total:
            outs.append(self.middle_block(h, emb, context))
        return outs + [None] * (total - len(outs))
