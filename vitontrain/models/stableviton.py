"""The full StableVITON model (official ``ControlLDM`` minus the Lightning parts), with the official state-dict layout.

Attributes (= state-dict prefixes, in the official order): ``learnable_vector`` [1,1,768]; the 13 schedule buffers;
``model.diffusion_model`` (:class:`StableVITONUNet`, incl. ``warp_flow_blks``/``warp_zero_convs``);
``first_stage_model`` (:class:`AutoencoderKL`); ``cond_stage_model`` (:class:`CLIPImageCondition`); ``proj_out``
(Linear 1024→768); ``lastzc`` (Conv 4→4 1×1, zero, unused — present in the checkpoints); ``control_model``
(:class:`SpatialEncoder`).

This is a plain ``nn.Module``; the Lightning system owns the optimiser and the logging. Frozen parts run as
officially: VAE and CLIP under ``no_grad``, the UNet encoder/middle under ``no_grad`` (inside the UNet), the UNet
decoder in the graph (gradients flow through it to the zero cross-attention blocks) with ``requires_grad=False``.

Batch contract (NCHW float tensors, one size H×W for all images, H and W multiples of 64):
``image``, ``agn``, ``image_densepose``, ``cloth`` in [-1,1] with 3 channels; ``agn_mask`` [B,1,H,W] in [0,1] with
1 = keep (visible) region; ``gt_cloth_warped_mask`` [B,1,H,W] with 1 = garment as worn (only for the ATV loss).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from vitontrain.models.blocks import set_checkpointing, zero_module
from vitontrain.models.clip_cond import CLIPImageCondition
from vitontrain.models.instantiate import instantiate_from_config
from vitontrain.models.schedule import extract, register_schedule
from vitontrain.models.spatial_encoder import SpatialEncoder
from vitontrain.models.unet import StableVITONUNet
from vitontrain.models.vae import AutoencoderKL, DiagonalGaussianDistribution

logger = logging.getLogger(__name__)

TrainableMode = Literal["official", "effective", "none"]
IMAGE_KEYS = ("image", "agn", "image_densepose", "cloth")
MASK_KEYS = ("agn_mask",)
ATV_MASK_KEY = "gt_cloth_warped_mask"


@dataclass
class ModelInputs:
    """Network inputs derived from a batch (``ControlLDM.get_input``)."""

    z0: torch.Tensor                   # target latent, scale_factor · VAE(image) [B,4,h,w]
    first_stage_cond: torch.Tensor     # [VAE(agn) (4), agn_mask (1), VAE(densepose) (4)] → [B,9,h,w]
    cloth: torch.Tensor                # cloth image [-1,1] (hint source and CLIP input)
    atv_region: torch.Tensor | None    # warped-cloth mask nearest-resized to h×w [B,1,h,w], 1 = cloth
    cloth_posterior: DiagonalGaussianDistribution | None = None  # VAE(cloth), when encoded with the others


@dataclass
class LossOutput:
    loss: torch.Tensor                 # total training loss
    loss_simple: torch.Tensor          # ε-MSE term
    loss_atv: torch.Tensor | None      # weighted ATV term (atv_weight · TV), None when ATV is off
    t: torch.Tensor                    # sampled timesteps [B]
    uncond: bool                       # whether the step used the learnable unconditional token (CFG dropout)


class DiffusionWrapper(nn.Module):
    """Holds the UNet under the name ``diffusion_model`` (key prefix ``model.diffusion_model``)."""

    def __init__(self, diffusion_model: nn.Module):
        super().__init__()
        self.diffusion_model = diffusion_model

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.diffusion_model(*args, **kwargs)


def _build(config: Mapping[str, Any] | nn.Module, expected: type) -> nn.Module:
    module = config if isinstance(config, nn.Module) else instantiate_from_config(config)
    if not isinstance(module, expected):
        raise TypeError(f"expected a {expected.__name__}, the config built a {type(module).__name__}")
    return module


class StableVITONModel(nn.Module):
    """Typed config (official ``ControlLDM`` params that change the model; data-key names are fixed, see module doc).

    * ``unet_config``, ``control_stage_config``, ``first_stage_config``, ``cond_stage_config``: ``{target, params}``
      dicts (or built modules).
    * schedule: ``linear_start``, ``linear_end``, ``timesteps``, ``beta_schedule``; ``scale_factor`` 0.18215.
    * ``u_cond_percent``: probability that a training step replaces the whole batch's context by
      ``learnable_vector`` (CFG dropout, one draw per step).
    * ``use_atv_loss``, ``atv_weight`` (0.001): stage-2 attention total variation loss.
    * ``sample_posterior``: sample the VAE posteriors (official) or use their means (deterministic).
    * ``skip_unused_control``: do not compute the spatial-encoder blocks whose outputs are discarded (identical
      result, ~170 M parameters less compute).
    * ``trainable``: ``"official"`` = the official optimizer set (529.4 M params at full size: spatial encoder,
      UNet conv_in, proj_out, learnable_vector, warp blocks + zero convs); ``"effective"`` = the subset that actually
      receives gradients (355.3 M; use it with DDP without ``find_unused_parameters``); ``"none"``.
    * ``gradient_checkpointing``: overrides the sub-configs' ``use_checkpoint`` when not None.
    """

    def __init__(
        self,
        unet_config: Mapping[str, Any] | nn.Module,
        control_stage_config: Mapping[str, Any] | nn.Module,
        first_stage_config: Mapping[str, Any] | nn.Module,
        cond_stage_config: Mapping[str, Any] | nn.Module,
        linear_start: float = 0.00085,
        linear_end: float = 0.012,
        timesteps: int = 1000,
        beta_schedule: str = "linear",
        scale_factor: float = 0.18215,
        u_cond_percent: float = 0.2,
        use_atv_loss: bool = False,
        atv_weight: float = 0.001,
        parameterization: str = "eps",
        l_simple_weight: float = 1.0,
        sample_posterior: bool = True,
        skip_unused_control: bool = True,
        trainable: TrainableMode = "official",
        gradient_checkpointing: bool | None = None,
    ):
        super().__init__()
        if parameterization != "eps":
            raise ValueError(f"parameterization {parameterization!r}: StableVITON is trained with 'eps' only")
        unet = _build(unet_config, StableVITONUNet)
        context_dim = unet.context_dim
        # Parameters first, then buffers, then children — the official state-dict order.
        self.learnable_vector = nn.Parameter(torch.randn(1, 1, context_dim))
        register_schedule(self, timesteps=timesteps, linear_start=linear_start, linear_end=linear_end,
                          beta_schedule=beta_schedule)
        self.model = DiffusionWrapper(unet)
        self.first_stage_model = _build(first_stage_config, AutoencoderKL)
        self.cond_stage_model = _build(cond_stage_config, CLIPImageCondition)
        self.proj_out = nn.Linear(self.cond_stage_model.width, context_dim)
        self.lastzc = zero_module(nn.Conv2d(4, 4, 1))
        self.control_model = _build(control_stage_config, SpatialEncoder)

        self.num_timesteps = timesteps
        self.scale_factor = scale_factor
        self.u_cond_percent = u_cond_percent
        self.use_atv_loss = use_atv_loss
        self.atv_weight = atv_weight
        self.l_simple_weight = l_simple_weight
        self.sample_posterior = sample_posterior
        self.skip_unused_control = skip_unused_control
        self.latent_factor = self.first_stage_model.downsample_factor
        self.memory_format = torch.contiguous_format
        # One VAE pass for the step's four inputs: None = on accelerators only. On CPU (bench_train_step.py
        # --compare) the 4× larger batch was 1.5× slower than four passes: its activations overflow the caches.
        self.batch_first_stage: bool | None = None
        if gradient_checkpointing is not None:
            self.set_gradient_checkpointing(gradient_checkpointing)
        self.configure_trainable(trainable)

    # ----------------------------------------------------------------------------------------------- training set-up
    @property
    def unet(self) -> StableVITONUNet:
        return self.model.diffusion_model

    def train(self, mode: bool = True) -> "StableVITONModel":
        """Frozen VAE and CLIP always stay in eval mode (official ``disabled_train`` on the first stage)."""
        super().train(mode)
        self.first_stage_model.eval()
        self.cond_stage_model.eval()
        return self

    def trainable_parameter_names(self, mode: TrainableMode = "official") -> list[str]:
        """Names of the parameters optimised in ``mode`` (see class doc), in ``named_parameters`` order."""
        if mode not in ("official", "effective", "none"):
            raise ValueError(f"unknown trainable mode {mode!r} (official, effective, none)")
        if mode == "none":
            return []
        n_used = len(self.unet.control_indices_used)
        names = []
        for name, _ in self.named_parameters():
            if name.startswith("control_model."):
                if mode == "effective":
                    rest = name[len("control_model."):]
                    if rest.startswith("middle_block."):
                        continue
                    if rest.startswith("input_blocks.") and int(rest.split(".")[1]) >= n_used:
                        continue
                names.append(name)
            elif name.startswith("model.diffusion_model.input_blocks.0."):
                if mode == "official":  # listed officially, but the UNet encoder runs under no_grad
                    names.append(name)
            elif name.startswith(("model.diffusion_model.warp_flow_blks.", "model.diffusion_model.warp_zero_convs.",
                                  "proj_out.")) or name == "learnable_vector":
                names.append(name)
        return names

    def configure_trainable(self, mode: TrainableMode = "official") -> None:
        """``requires_grad=True`` exactly on the parameters of ``mode``, False everywhere else."""
        keep = set(self.trainable_parameter_names(mode))
        for name, p in self.named_parameters():
            p.requires_grad_(name in keep)
        self.trainable_mode = mode

    def optimizer_parameters(self) -> list[nn.Parameter]:
        """The parameters to hand to the optimiser (those with ``requires_grad``)."""
        return [p for p in self.parameters() if p.requires_grad]

    def use_channels_last(self) -> None:
        """Convolution weights (and the VAE's input) in NHWC: the layout tensor cores read without transposes;
        convolutions then produce NHWC activations by themselves."""
        self.to(memory_format=torch.channels_last)
        self.memory_format = torch.channels_last

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        """Checkpoint the ResBlocks and transformer blocks of the UNet and the spatial encoder (official
        ``use_checkpoint``); the zero cross-attention blocks are never checkpointed, as officially."""
        n = set_checkpointing(self.unet, enabled) + set_checkpointing(self.control_model, enabled)
        logger.debug("gradient checkpointing %s on %d blocks", "on" if enabled else "off", n)

    # ------------------------------------------------------------------------------------------------ first stage
    @torch.no_grad()
    def encode_first_stage(self, x: torch.Tensor) -> DiagonalGaussianDistribution:
        return self.first_stage_model.encode(x)

    @torch.no_grad()
    def encode_first_stage_batched(self, images: list[torch.Tensor]) -> list[DiagonalGaussianDistribution]:
        """One VAE encoder pass over several image batches of one size (the step's four inputs): one large batch
        keeps the device busier than four small ones. Returns one posterior per input, in order."""
        sizes = [x.shape[0] for x in images]
        x = torch.cat(images).contiguous(memory_format=self.memory_format)
        moments = self.first_stage_model.quant_conv(self.first_stage_model.encoder(x))
        return [DiagonalGaussianDistribution(m) for m in moments.split(sizes)]

    def latent_from_posterior(self, posterior: DiagonalGaussianDistribution,
                              generator: torch.Generator | None = None) -> torch.Tensor:
        z = posterior.sample(generator) if self.sample_posterior else posterior.mode()
        return self.scale_factor * z

    @torch.no_grad()
    def get_first_stage_encoding(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Image [-1,1] → ``scale_factor`` · posterior sample (or mean when ``sample_posterior`` is False)."""
        return self.latent_from_posterior(self.encode_first_stage(x), generator)

    @torch.no_grad()
    def decode_first_stage(self, z: torch.Tensor) -> torch.Tensor:
        return self.first_stage_model.decode(z / self.scale_factor)

    # --------------------------------------------------------------------------------------------------- condition
    @torch.no_grad()
    def clip_embedding(self, cloth: torch.Tensor) -> torch.Tensor:
        """Cloth image [-1,1] → CLIP token after mapper and final_ln [B,1,1024] (frozen, no gradients)."""
        return self.cond_stage_model(self.cond_stage_model.preprocess(cloth))

    def conditional_context(self, cloth: torch.Tensor) -> torch.Tensor:
        """Cross-attention context [B,1,768] = ``proj_out`` (trainable) of the CLIP token."""
        return self.proj_out(self.clip_embedding(cloth))

    def unconditional_context(self, batch_size: int) -> torch.Tensor:
        """``learnable_vector`` repeated [B,1,768]; it bypasses ``proj_out`` (official)."""
        return self.learnable_vector.expand(batch_size, -1, -1)

    # ------------------------------------------------------------------------------------------------------ inputs
    def check_batch(self, batch: Mapping[str, torch.Tensor], need_atv: bool = False) -> tuple[int, int, int]:
        """Validate the batch contract; returns (B, H, W)."""
        keys = IMAGE_KEYS + MASK_KEYS + ((ATV_MASK_KEY,) if need_atv else ())
        missing = [k for k in keys if k not in batch]
        if missing:
            raise KeyError(f"batch is missing {missing} (has {sorted(batch)})")
        b, _, h, w = batch["image"].shape
        for k in keys:
            t = batch[k]
            channels = 3 if k in IMAGE_KEYS else 1
            if t.ndim != 4 or t.shape[1] != channels or tuple(t.shape[2:]) != (h, w) or t.shape[0] != b:
                raise ValueError(f"batch[{k!r}] has shape {tuple(t.shape)}, expected NCHW [{b},{channels},{h},{w}]")
        mult = self.latent_factor * self.unet.downsample_factor
        if h % mult or w % mult:
            raise ValueError(f"image size {h}x{w}: height and width must be multiples of {mult} "
                             f"(VAE /{self.latent_factor}, then the UNet's downsamplings)")
        return b, h, w

    @torch.no_grad()
    def get_input(self, batch: Mapping[str, torch.Tensor], generator: torch.Generator | None = None,
                  need_atv: bool | None = None, encode_cloth: bool = False) -> ModelInputs:
        """``encode_cloth``: encode the cloth in the same VAE pass and return its posterior (not yet sampled, so
        that its noise is drawn where the official step draws it, after t, ε and the CFG decision)."""
        need_atv = self.use_atv_loss if need_atv is None else need_atv
        _, h, w = self.check_batch(batch, need_atv)
        lh, lw = h // self.latent_factor, w // self.latent_factor
        keys = ("image", "agn", "image_densepose") + (("cloth",) if encode_cloth else ())
        images = [batch[k].float() for k in keys]
        batched = self.batch_first_stage if self.batch_first_stage is not None else images[0].device.type != "cpu"
        posteriors = (self.encode_first_stage_batched(images) if batched
                      else [self.encode_first_stage(x) for x in images])
        # posterior noise drawn in the official order: image, agn, densepose
        z0, agn, densepose = (self.latent_from_posterior(p, generator) for p in posteriors[:3])
        mask = F.interpolate(batch["agn_mask"].float(), size=(lh, lw), mode="bilinear", align_corners=False,
                             antialias=False)
        region = None
        if need_atv:
            region = F.interpolate(batch[ATV_MASK_KEY].float(), size=(lh, lw), mode="nearest")
        return ModelInputs(z0=z0, first_stage_cond=torch.cat([agn, mask.to(agn.dtype), densepose], dim=1),
                           cloth=batch["cloth"].float(), atv_region=region,
                           cloth_posterior=posteriors[3] if encode_cloth else None)

    # --------------------------------------------------------------------------------------------------- denoiser
    def apply_model(self, x_noisy: torch.Tensor, t: torch.Tensor, first_stage_cond: torch.Tensor,
                    hint: torch.Tensor, context: torch.Tensor, atv_region: torch.Tensor | None = None,
                    generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """ε-prediction. ``hint``: the cloth latent [B,4,h,w], or the cloth image [B,3,8h,8w] which is VAE-encoded
        here (as officially, at every call). Returns ``(eps, atv_tv)`` (unweighted ATV, None without region)."""
        x = torch.cat([x_noisy, first_stage_cond.to(x_noisy.dtype)], dim=1)
        if hint.shape[-2:] != x_noisy.shape[-2:]:
            hint = self.get_first_stage_encoding(hint, generator)
        n_out = len(self.unet.control_indices_used) if self.skip_unused_control else None
        control = self.control_model(x, hint.to(x.dtype), t, context, num_outputs=n_out)
        return self.unet(x, t, context, control=control, atv_region=atv_region)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return (extract(self.sqrt_alphas_cumprod, t, x0.ndim) * x0
                + extract(self.sqrt_one_minus_alphas_cumprod, t, x0.ndim) * noise)

    # ------------------------------------------------------------------------------------------------------- loss
    def training_loss(self, batch: Mapping[str, torch.Tensor], t: torch.Tensor | None = None,
                      noise: torch.Tensor | None = None, uncond: bool | None = None,
                      generator: torch.Generator | None = None) -> LossOutput:
        """One training step's loss (``LatentDiffusion.forward`` + ``p_losses`` with ``use_pbe_weight``).

        ``t``, ``noise`` and ``uncond`` (CFG dropout decision) are drawn when not given; ``generator`` makes every
        draw (including the VAE posterior samples) reproducible.
        """
        inp = self.get_input(batch, generator, encode_cloth=True)
        z0 = inp.z0.float()  # ε target and q_sample in fp32, also under bf16 autocast
        b = z0.shape[0]
        device = z0.device
        gdev = device if generator is None else generator.device
        if t is None:
            t = torch.randint(0, self.num_timesteps, (b,), generator=generator, device=gdev).to(device)
        if noise is None:
            noise = torch.randn(z0.shape, generator=generator, device=gdev, dtype=torch.float32).to(device)
        if uncond is None:
            uncond = bool(torch.rand((), generator=_host_generator(generator)) < self.u_cond_percent)
        # Both branches are always in the graph, so every trained parameter gets a gradient (zero for the branch
        # not taken) and DDP can run with a static graph; torch.where picks the values exactly.
        pick_uncond = torch.full((), uncond, dtype=torch.bool, device=device)
        context = torch.where(pick_uncond, self.unconditional_context(b), self.conditional_context(inp.cloth))
        x_noisy = self.q_sample(z0, t, noise)
        hint = self.latent_from_posterior(inp.cloth_posterior, generator)
        eps, tv = self.apply_model(x_noisy, t, inp.first_stage_cond, hint, context,
                                   atv_region=inp.atv_region if self.use_atv_loss else None, generator=generator)
        per_sample = F.mse_loss(eps.float(), noise.float(), reduction="none").mean(dim=(1, 2, 3))
        logvar_t = self.logvar[t]
        loss_simple = (per_sample / torch.exp(logvar_t) + logvar_t).mean()
        loss = self.l_simple_weight * loss_simple
        loss_atv = None
        if tv is not None:
            loss_atv = self.atv_weight * tv
            loss = loss + loss_atv
        return LossOutput(loss=loss, loss_simple=per_sample.mean().detach(),
                          loss_atv=None if loss_atv is None else loss_atv.detach(), t=t, uncond=uncond)

    def forward(self, batch: Mapping[str, torch.Tensor], **kwargs: Any) -> LossOutput:
        return self.training_loss(batch, **kwargs)


def _host_generator(generator: torch.Generator | None) -> torch.Generator | None:
    """The generator for host-side decisions (the CFG draw): a CUDA draw read with ``bool()`` would stall the host
    until the device caught up at every step. A CPU generator stays itself (the CPU stream is unchanged)."""
    if generator is None or generator.device.type == "cpu":
        return generator
    return torch.Generator().manual_seed(generator.initial_seed())


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)

