"""Where a run's weights come from, and training checkpoints that leave the frozen ones out.

* :func:`build_net` — the model of a :class:`FitConfig` with its starting weights: the random initialisation, then
  ``init.paint_by_example`` / ``init.stableviton`` / ``init.vae`` (or the smoke-run stand-in). ``fit`` seeds
  torch with ``train.seed`` right before it, and so does :func:`restore_net`: the same config builds the same
  weights, which is what refilling a checkpoint relies on.
* Slim checkpoints. The frozen tensors — VAE, CLIP image encoder, the frozen UNet, the spatial-encoder blocks that
  never run: every parameter with ``requires_grad=False`` — never change while training, so ``fit`` leaves them out
  of ``last.ckpt`` / ``stepN.ckpt`` (1.48 B of the 1.84 B parameters at full size). In their place the checkpoint
  records, under ``checkpoint["vitontrain"]``, the resolved config as YAML (``config``), the names left out and a
  fingerprint of their values (``frozen``). :func:`restore_net` rebuilds them from the config's ``init.*`` files
  and refuses, naming the file, when a source is missing, unreadable or no longer holds the same weights.
* :func:`read_model_state` — the full official state dict of any checkpoint (official, safetensors, ours, slim);
  :func:`export_checkpoint` writes it (optionally with the EMA weights) for the official code.
* :func:`store_frozen_bf16` — under ``bf16-mixed``, the VAE/CLIP weights that autocast would cast to bf16 at every
  use are stored in bf16 once.

A checkpoint's config is untrusted text: it is parsed with the strict loader (:func:`config_from_yaml`), and only
``vitontrain.`` classes can be built from it.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from vitonprep import ConfigError
from vitontrain.checkpoints import (
    CheckpointError,
    UnsafeCheckpointError,
    extract_state_dict,
    init_from_paint_by_example,
    load_stableviton,
    load_vae_finetune,
    read_checkpoint,
    read_state_dict,
    save_official,
    save_safetensors,
)
from vitontrain.models.instantiate import instantiate_from_config
from vitontrain.models.stableviton import StableVITONModel, count_parameters
from vitontrain.train.config import FitConfig, config_from_yaml, config_to_yaml

logger = logging.getLogger(__name__)

#: ``checkpoint["vitontrain"]`` keys written by ``fit``
CONFIG_KEY = "config"
FROZEN_KEY = "frozen"
EXPORT_SUFFIXES = (".safetensors", ".ckpt", ".pth", ".pt")


# ---------------------------------------------------------------------------------------------- the starting model
def init_files(cfg: FitConfig) -> dict[str, str]:
    """``init.*`` weight files of a config, by key (``stableviton``, ``paint_by_example``, ``vae``)."""
    init = cfg.init
    return {name: path for name, path in (("stableviton", init.stableviton),
                                          ("paint_by_example", init.paint_by_example), ("vae", init.vae)) if path}


def build_net(cfg: FitConfig, _chain: tuple[str, ...] = ()) -> StableVITONModel:
    """The model of ``cfg`` with its starting weights; the random initialisation draws from torch's global
    generator (seed it with ``train.seed`` first to build what ``fit`` built)."""
    files = init_files(cfg)
    for path in files.values():
        if not Path(path).is_file():
            raise FileNotFoundError(f"init weights {path} not found")
    # read (memory-mapped) before the model is built: an unsafe or unreadable file is refused at once. A slim
    # checkpoint given as init.stableviton is completed from its own run's init files.
    weights = {name: read_model_state(path, _chain) if name == "stableviton" else read_state_dict(path)
               for name, path in files.items()}
    net = instantiate_from_config(cfg.model_config())
    if not isinstance(net, StableVITONModel):
        raise ConfigError(f"{cfg.source}: model.target must build a StableVITONModel, got {type(net).__name__}")
    if cfg.init.stand_in_pretrained:
        if "stableviton" in files or "paint_by_example" in files:
            raise ConfigError("init.stand_in_pretrained is for runs without real weights; unset it when "
                              "init.stableviton or init.paint_by_example is given")
        n = stand_in_pretrained(net, cfg.train.seed)
        logger.warning("init.stand_in_pretrained: %d zero-initialised frozen tensors filled with random values in "
                       "place of pretrained weights — a smoke run, not a real training start", n)
    if "paint_by_example" in weights:
        init_from_paint_by_example(net, weights["paint_by_example"], source=files["paint_by_example"])
    if "stableviton" in weights:
        load_stableviton(net, weights["stableviton"], source=files["stableviton"])
    if "vae" in weights:
        load_vae_finetune(net, weights["vae"], source=files["vae"])
    logger.info("model: %.1f M parameters, %.1f M in the optimiser", count_parameters(net) / 1e6,
                sum(p.numel() for p in net.optimizer_parameters()) / 1e6)
    return net


@torch.no_grad()
def stand_in_pretrained(net: StableVITONModel, seed: int) -> int:
    """Give a randomly initialised model what pretrained weights would give it: non-zero frozen output layers.

    ldm zero-initialises the UNet's output conv and every ResBlock/transformer output projection. In a real run the
    frozen UNet comes pretrained (Paint-by-Example); at random initialisation its output is exactly zero, no gradient
    reaches the trained parts and nothing can be learned. The trained zero convs stay zero (that is the design).
    Returns the number of tensors filled.
    """
    trained = {id(p) for p in net.optimizer_parameters()}
    generator = torch.Generator().manual_seed(seed)
    filled = 0
    for p in net.parameters():
        if id(p) in trained or p.ndim < 2 or p.device.type == "meta" or torch.count_nonzero(p):
            continue
        fan_in = p[0].numel()
        p.copy_(torch.randn(p.shape, generator=generator) / fan_in ** 0.5)
        filled += 1
    return filled


@torch.no_grad()
def store_frozen_bf16(net: StableVITONModel) -> int:
    """Store the VAE's and CLIP's convolution and linear weights in bf16 (for ``bf16-mixed`` runs).

    Under bf16 autocast these layers cast their weights to bf16 at every call; storing them cast once gives the
    same bits (the same round-to-nearest) without the per-call copies. Norms, embeddings and the class token stay
    fp32, as autocast runs those in fp32. Only frozen modules are touched: nothing trained, no optimiser or EMA
    state changes. Every later use must run under autocast (the training step and, in bf16 runs, the sample
    grids do). Returns the number of tensors cast."""
    cast = 0
    for part in (net.first_stage_model, net.cond_stage_model):
        for module in part.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                if any(p.requires_grad for p in module.parameters()):
                    raise ValueError(f"{type(module).__name__} in a frozen part has trained parameters")
                module.to(torch.bfloat16)
                cast += sum(1 for _ in module.parameters())
    return cast


# ------------------------------------------------------------------------------------------ slim checkpoints
def frozen_keys(net: nn.Module) -> list[str]:
    """State-dict keys of the parameters no optimiser updates (left out of training checkpoints)."""
    return [name for name, p in net.named_parameters() if not p.requires_grad]


def fingerprint(state: Mapping[str, torch.Tensor], keys: list[str] | tuple[str, ...]) -> str | None:
    """A hash of the values of ``keys`` (name, dtype, shape, bytes); None for tensors on the meta device. SHA-256:
    OpenSSL's runs on the CPU's SHA instructions, the fastest of hashlib's here (5.9 GB of frozen weights at full
    size are hashed when a run starts and when a checkpoint is read)."""
    digest = hashlib.sha256()
    for key in sorted(keys):
        t = state[key].detach()
        if t.device.type == "meta":
            return None
        digest.update(f"{key}|{t.dtype}|{list(t.shape)}|".encode())
        digest.update(t.cpu().contiguous().reshape(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()


@dataclass(frozen=True)
class RunInfo:
    """What a run writes into every checkpoint besides the trained tensors."""

    config_yaml: str                   # the resolved config (also OUT_DIR/config.yaml)
    dropped: tuple[str, ...]           # frozen keys left out of the checkpoints
    fingerprint: str | None            # of their values as built (None when built on the meta device)

    @classmethod
    def of(cls, cfg: FitConfig, net: nn.Module) -> "RunInfo":
        """Call before any dtype or layout change of the frozen weights (the refill rebuilds them as built)."""
        dropped = tuple(frozen_keys(net))
        return cls(config_to_yaml(cfg), dropped, fingerprint(net.state_dict(), dropped))

    def checkpoint_entries(self) -> dict[str, Any]:
        return {CONFIG_KEY: self.config_yaml,
                FROZEN_KEY: {"dropped": list(self.dropped), "fingerprint": self.fingerprint}}


@dataclass(frozen=True)
class FrozenInfo:
    dropped: tuple[str, ...]
    fingerprint: str | None


def frozen_info(checkpoint: Any, where: str) -> FrozenInfo | None:
    """The ``frozen`` record of a training checkpoint (None when nothing was left out); checked, it is untrusted."""
    meta = checkpoint.get("vitontrain") if isinstance(checkpoint, Mapping) else None
    record = meta.get(FROZEN_KEY) if isinstance(meta, Mapping) else None
    if record is None:
        return None
    dropped, fp = (record.get("dropped"), record.get("fingerprint")) if isinstance(record, Mapping) else (None, None)
    if (not isinstance(dropped, (list, tuple)) or not all(isinstance(k, str) for k in dropped)
            or not (fp is None or isinstance(fp, str))):
        raise CheckpointError(f"{where}: malformed vitontrain.frozen record (expected a list of key names and a "
                              f"fingerprint string)")
    return FrozenInfo(tuple(dropped), fp) if dropped else None


def checkpoint_config(checkpoint: Any, where: str) -> FitConfig | None:
    """The resolved training config a checkpoint carries (None for official and older files)."""
    meta = checkpoint.get("vitontrain") if isinstance(checkpoint, Mapping) else None
    if not isinstance(meta, Mapping) or CONFIG_KEY not in meta:
        return None
    return config_from_yaml(meta[CONFIG_KEY], f"{where} (its training config)")


def restore_net(path: str | Path, checkpoint: Any = None, _chain: tuple[str, ...] = ()
                ) -> tuple[StableVITONModel, FitConfig]:
    """The model a ``fit`` checkpoint was saved from, rebuilt from its own config alone: built as the run built it
    (frozen weights from the same ``init.*`` files, checked against the recorded fingerprint), then the
    checkpoint's tensors loaded strictly. ``checkpoint``: the file's contents when already read."""
    where, real = str(path), str(Path(path).resolve())  # resolved: last.ckpt is a link to the newest step file
    if real in _chain:
        raise CheckpointError(f"{where}: its frozen weights would come from itself (init.stableviton chain "
                              f"{' -> '.join(_chain + (real,))})")
    checkpoint = read_checkpoint(path) if checkpoint is None else checkpoint
    cfg = checkpoint_config(checkpoint, where)
    if cfg is None:
        raise CheckpointError(f"{where}: holds no training config (not written by this version of vitontrain "
                              f"fit); give the model config with --config")
    frozen = frozen_info(checkpoint, where)
    for key, source in init_files(cfg).items():
        if not Path(source).is_file():
            raise CheckpointError(f"{where}: its frozen weights (VAE, CLIP, frozen UNet) are not in the file but in "
                                  f"init.{key} = {source} of the run that wrote it, which is missing: put it back "
                                  f"there, or export a full checkpoint where it exists (vitontrain "
                                  f"export-checkpoint)")
    try:
        torch.manual_seed(cfg.train.seed)  # what fit's seed_everything did right before its build_net
        net = build_net(cfg, _chain + (real,))
    except UnsafeCheckpointError:
        raise  # names the refused file itself
    except ConfigError as exc:
        raise ConfigError(f"{where} (its training config): {exc}") from exc
    except CheckpointError as exc:
        raise CheckpointError(f"{where}: its frozen weights come from the init files of its run: {exc}") from exc
    state = extract_state_dict(checkpoint, where)
    if frozen is not None:
        built = net.state_dict()
        unknown = [k for k in frozen.dropped if k not in built]
        if unknown:
            raise CheckpointError(f"{where}: {len(unknown)} frozen keys it left out are not in its model, e.g. "
                                  f"{unknown[:3]}")
        if frozen.fingerprint is None:  # nothing to check the refill against: a hand-edited or foreign file
            raise CheckpointError(f"{where}: it left {len(frozen.dropped)} frozen tensors out but records no "
                                  f"fingerprint of them, so a refill from the init files cannot be checked; "
                                  f"refusing (use a full checkpoint: vitontrain export-checkpoint on the original)")
        if fingerprint(built, frozen.dropped) != frozen.fingerprint:
            sources = ", ".join(f"init.{k} = {v}" for k, v in init_files(cfg).items()) or "the seeded random " \
                "initialisation (another torch version can draw it differently)"
            raise CheckpointError(f"{where}: the frozen weights rebuilt from {sources} differ from those the run "
                                  f"trained with (a file was replaced?); refusing to mix them")
        state = {**{k: built[k] for k in frozen.dropped}, **state}
    load_stableviton(net, state, strict=True, source=where)
    return net, cfg


def read_model_state(path: str | Path, _chain: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """The full state dict (official key names) of any checkpoint: official, safetensors, ours; a slim one is
    completed by :func:`restore_net`."""
    checkpoint = read_checkpoint(path)
    if frozen_info(checkpoint, str(path)) is None:
        return extract_state_dict(checkpoint, str(path))
    net, _ = restore_net(path, checkpoint, _chain)
    return net.state_dict()


def ema_weights(checkpoint: Any, where: str) -> dict[str, torch.Tensor]:
    """The EMA shadows (official names of the trained parameters) of a ``fit`` checkpoint."""
    callbacks = checkpoint.get("callbacks") if isinstance(checkpoint, Mapping) else None
    for name, state in (callbacks or {}).items():
        if str(name).startswith("TrainedParamsEMA") and isinstance(state, Mapping) and "shadow" in state:
            return extract_state_dict(state["shadow"], f"{where} (EMA)")
    raise CheckpointError(f"{where}: no EMA weights in the file (train.ema.enabled was off)")


def export_checkpoint(source: str | Path, out: str | Path, ema: bool = False) -> Path:
    """Write the full model of a checkpoint in the official layout: ``.safetensors``, or a weights-only torch file
    ``{"state_dict": …}`` (``.ckpt``/``.pth``/``.pt``) that the official code loads strictly. ``ema``: the EMA
    weights in place of the trained parameters."""
    source, out = Path(source), Path(out)
    if out.suffix not in EXPORT_SUFFIXES:
        raise ValueError(f"{out}: the export must end in one of {EXPORT_SUFFIXES}")
    if out.resolve() == source.resolve():
        raise ValueError(f"{out}: the export would overwrite its source")
    checkpoint = read_checkpoint(source)
    if checkpoint_config(checkpoint, str(source)) is not None:
        state = restore_net(source, checkpoint)[0].state_dict()
    else:
        state = extract_state_dict(checkpoint, str(source))
    if ema:
        shadows = ema_weights(checkpoint, str(source))
        unknown = [k for k in shadows if k not in state]
        if unknown:
            raise CheckpointError(f"{source}: EMA weights for keys the model lacks, e.g. {unknown[:3]}")
        state.update({k: v.to(state[k].dtype) for k, v in shadows.items()})
    if out.suffix == ".safetensors":
        return save_safetensors(state, out, {"source": source.name, "weights": "ema" if ema else "trained"})
    return save_official(state, out)
