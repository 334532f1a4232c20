"""The StableVITON denoiser (official class ``StableVITON(UNetModel)`` in ``cldm/warping_cldm_network.py``).

An SD-1.x UNet with a 13-channel input whose encoder and middle block run under ``torch.no_grad`` (frozen), plus
nine zero cross-attention blocks ``warp_flow_blks.i`` with 1×1 zero convs ``warp_zero_convs.i``, applied to the
decoder feature right before ``output_blocks[3 + i]``. Block i reads the spatial-encoder feature of the same skip
level as that output block (control output ``11 − (3 + i)``: input_blocks.8 … input_blocks.0). The three 8×6
decoder blocks get no injection; the spatial encoder's outputs 9–11 and its middle block are never used.

Keys: ``time_embed``, ``input_blocks``, ``middle_block``, ``output_blocks``, ``out``, ``warp_flow_blks``,
``warp_zero_convs`` — registered in this order, as officially.
"""

from __future__ import annotations

import logging
from typing import Sequence

import torch
from torch import nn

from vitontrain.models.blocks import (
    ResBlock,
    SpatialTransformer,
    TimestepEmbedSequential,
    Upsample,
    build_encoder,
    build_middle,
    normalization,
    time_embed_mlp,
    timestep_embedding,
    zero_module,
)
from vitontrain.models.zero_xattn import ZeroCrossAttention

logger = logging.getLogger(__name__)


class StableVITONUNet(nn.Module):
    """Typed config = the official ``unet_config.params`` (``image_size`` and ``legacy`` are accepted, no effect).

    ``atv_blocks``: indices i of ``warp_flow_blks`` that compute the ATV loss (official: only 4, the 32×24 block).
    """

    def __init__(
        self,
        in_channels: int = 13,
        out_channels: int = 4,
        model_channels: int = 320,
        attention_resolutions: Sequence[int] = (4, 2, 1),
        num_res_blocks: int = 2,
        channel_mult: Sequence[int] = (1, 2, 4, 4),
        num_heads: int = 8,
        transformer_depth: int = 1,
        context_dim: int = 768,
        dropout: float = 0.0,
        use_checkpoint: bool = True,
        dim_head_denorm: int = 1,
        atv_blocks: Sequence[int] = (4,),
        use_spatial_transformer: bool = True,
        legacy: bool = False,
        image_size: int | None = None,
    ):
        super().__init__()
        if not use_spatial_transformer:
            raise ValueError("StableVITONUNet: use_spatial_transformer must be True (cross-attention UNet)")
        del legacy, image_size  # accepted for parity with the official config; no effect with num_heads set
        self.in_channels = in_channels
        self.model_channels = model_channels
        self.num_res_blocks = num_res_blocks
        self.context_dim = context_dim
        self.time_embed = time_embed_mlp(model_channels)
        self.input_blocks, chans, ch, ds = build_encoder(
            in_channels, model_channels, num_res_blocks, attention_resolutions, channel_mult, num_heads,
            transformer_depth, context_dim, dropout, use_checkpoint)
        self.middle_block = build_middle(ch, model_channels, num_heads, transformer_depth, context_dim, dropout,
                                         use_checkpoint)
        self.downsample_factor = ds  # latent sizes must be multiples of this
        enc_chans = list(chans)  # output width of each input block = width of each skip / control feature
        emb_dim = model_channels * 4
        self.output_blocks = nn.ModuleList()
        query_chans: list[int] = []  # width of h entering each output block
        for level, mult in reversed(list(enumerate(channel_mult))):
            for i in range(num_res_blocks + 1):
                query_chans.append(ch)
                skip = chans.pop()
                layers: list[nn.Module] = [ResBlock(ch + skip, emb_dim, dropout, model_channels * mult,
                                                    use_checkpoint)]
                ch = model_channels * mult
                if ds in attention_resolutions:
                    layers.append(SpatialTransformer(ch, num_heads, ch // num_heads, transformer_depth, dropout,
                                                     context_dim, use_checkpoint))
                if level and i == num_res_blocks:
                    layers.append(Upsample(ch))
                    ds //= 2
                self.output_blocks.append(TimestepEmbedSequential(*layers))
        self.out = nn.Sequential(normalization(ch), nn.SiLU(),
                                 zero_module(nn.Conv2d(model_channels, out_channels, 3, padding=1)))

        # Zero cross-attention: before every output block except the lowest level's num_res_blocks + 1.
        n_out = len(self.output_blocks)
        self.first_warp_block = num_res_blocks + 1
        n_warp = n_out - self.first_warp_block
        bad = [i for i in atv_blocks if not 0 <= i < n_warp]
        if bad:
            raise ValueError(f"atv_blocks {list(atv_blocks)}: indices must be in 0..{n_warp - 1}")
        self.warp_flow_blks = nn.ModuleList()
        self.warp_zero_convs = nn.ModuleList()
        for i in range(n_warp):
            j = self.first_warp_block + i
            q_ch, k_ch = query_chans[j], enc_chans[n_out - 1 - j]
            d_head = q_ch // num_heads // dim_head_denorm
            self.warp_flow_blks.append(ZeroCrossAttention(q_ch, num_heads, d_head, k_ch, transformer_depth,
                                                          dropout, atv=i in atv_blocks))
        for i in range(n_warp):
            q_ch = query_chans[self.first_warp_block + i]
            self.warp_zero_convs.append(zero_module(nn.Conv2d(q_ch, q_ch, 1)))

    @property
    def control_indices_used(self) -> range:
        """Spatial-encoder outputs read by the zero cross-attention blocks (0 … 8 officially)."""
        return range(len(self.output_blocks) - self.first_warp_block)

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor,
                control: Sequence[torch.Tensor | None] | None = None,
                atv_region: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Predict ε. ``x`` [B,13,h,w]; ``context`` [B,1,768]; ``control``: spatial-encoder outputs indexed like
        ``input_blocks`` (None = run the plain UNet, no zero cross-attention); ``atv_region`` [B,1,h,w] warped-cloth
        mask (1 = cloth) — when given, the ATV blocks return their loss.

        Returns ``(eps, atv_tv)`` with ``atv_tv`` the unweighted sum of the ATV block losses (None without region).
        """
        with torch.no_grad():  # the UNet encoder and middle block are frozen and never receive gradients
            emb = self.time_embed(timestep_embedding(timesteps, self.model_channels))
            hs = []
            h = x
            for block in self.input_blocks:
                h = block(h, emb, context)
                hs.append(h)
            h = self.middle_block(h, emb, context)
        n_out = len(self.output_blocks)
        atv_total: torch.Tensor | None = None
        for j, block in enumerate(self.output_blocks):
            if control is not None and j >= self.first_warp_block:
                i = j - self.first_warp_block
                hint = control[n_out - 1 - j]
                if hint is None:
                    raise ValueError(f"control output {n_out - 1 - j} is needed by warp_flow_blks.{i} but is None")
                y, tv = self.warp_flow_blks[i](h, hint, atv_region)
                h = h + self.warp_zero_convs[i](y)
                if tv is not None:
                    atv_total = tv if atv_total is None else atv_total + tv
            h = block(torch.cat([h, hs.pop()], dim=1), emb, context)
        return self.out(h), atv_total
