"""Checkpoint I/O for the StableVITON model (official state-dict layout, see ``vitontrain.models.stableviton``).

* :func:`load_stableviton` — ``VITONHD.ckpt`` (Lightning checkpoint, weights under ``"state_dict"``),
  ``VITONHD_PBE_pose.ckpt`` (bare or wrapped state dict), or one of our own files; strict by default.
* :func:`load_vae_finetune` — ``VITONHD_VAE_finetuning.ckpt`` (bare ``AutoencoderKL`` state dict plus ``loss.*``
  keys, which are dropped) into ``first_stage_model``.
* :func:`init_from_paint_by_example` — a StableVITON starting point from the public Paint-by-Example checkpoint
  (the official recipe, after ControlNet's ``tool_add_control.py``): conv_in zero-padded 9 → 13 channels, the
  spatial encoder copied from the UNet encoder, the new parts (cond_first_block, zero cross-attention blocks, zero
  convs, lastzc) at their (zero-)initialisation.
* :func:`save_official` (``{"state_dict": …}`` torch file, loadable by the official code) and
  :func:`save_safetensors`.

Training checkpoints written by ``vitontrain fit`` leave the frozen weights out; ``vitontrain.train.weights``
completes them (``read_model_state``, ``restore_net``) and exports full files.

Every load goes through ``torch.load(weights_only=True)`` or safetensors: no pickled code is ever executed. Key
problems are reported by name (:class:`LoadReport`); strict loads raise :class:`StateDictMismatchError`.
"""

from __future__ import annotations

import logging
import pickle
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch
from torch import nn

from vitontrain.models.schedule import SCHEDULE_BUFFERS

logger = logging.getLogger(__name__)

#: Buffer that transformers < 4.31 saved in CLIP checkpoints; non-persistent now — dropped when present.
POSITION_IDS_KEY = "cond_stage_model.transformer.vision_model.embeddings.position_ids"
#: StableVITON parts that Paint-by-Example does not have (they keep their fresh, mostly zero, initialisation).
NEW_IN_STABLEVITON = ("control_model.cond_first_block.", "model.diffusion_model.warp_flow_blks.",
                      "model.diffusion_model.warp_zero_convs.", "lastzc.")
#: UNet parts copied into the spatial encoder (ControlNet recipe).
ENCODER_PARTS = ("time_embed.", "input_blocks.", "middle_block.")
UNET_PREFIX = "model.diffusion_model."
CONV_IN_KEY = "model.diffusion_model.input_blocks.0.0.weight"


class CheckpointError(RuntimeError):
    """A checkpoint file cannot be read or does not fit the model."""


class UnsafeCheckpointError(CheckpointError):
    """The file needs more than tensors and plain containers to unpickle; it is refused."""


class StateDictMismatchError(CheckpointError):
    """Strict load with missing, unexpected or wrongly shaped keys; ``.report`` names them."""

    def __init__(self, report: "LoadReport"):
        super().__init__(report.summary())
        self.report = report


@dataclass
class LoadReport:
    """What a load did. ``ok`` when nothing is missing, unexpected or mismatched."""

    source: str
    target: str
    loaded: int = 0
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self, limit: int = 25) -> str:
        def names(keys: list[str]) -> str:
            shown = ", ".join(keys[:limit])
            return shown + (f", … (+{len(keys) - limit} more)" if len(keys) > limit else "")

        lines = [f"{self.source} -> {self.target}: {self.loaded} tensors loaded"]
        if self.missing:
            lines.append(f"  missing keys ({len(self.missing)}): {names(self.missing)}")
        if self.unexpected:
            lines.append(f"  unexpected keys ({len(self.unexpected)}): {names(self.unexpected)}")
        if self.mismatched:
            shown = [f"{k} (model {list(m)}, file {list(f)})" for k, m, f in self.mismatched]
            lines.append(f"  shape mismatches ({len(shown)}): {names(shown)}")
        if self.dropped:
            lines.append(f"  dropped on purpose ({len(self.dropped)}): {names(self.dropped)}")
        lines += [f"  {n}" for n in self.notes]
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------- reading
def read_checkpoint(path: str | Path, safe_globals: Iterable[Any] = (), mmap: bool | None = None) -> Any:
    """Load a ``.safetensors`` file or a torch file with ``weights_only=True``: the one reader of every checkpoint
    vitontrain opens (``sample``, ``tryon``, ``init.*`` and, through :class:`vitontrain.train.fit.WeightsOnlyIO`,
    Lightning's resume).

    ``safe_globals``: extra classes you explicitly trust (passed to ``torch.serialization.safe_globals``).
    ``mmap``: memory-map the tensors (default: when the file is a zip; the legacy format cannot be mapped). Pass
    False when the tensors outlive a file that may be rewritten in place (a resumed ``last.ckpt``).
    Raises :class:`UnsafeCheckpointError` for a file that needs more than tensors and plain containers, and
    :class:`CheckpointError` for one that cannot be read at all (truncated, not a checkpoint); both name the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc
    if mmap is None:
        mmap = zipfile.is_zipfile(path)
    try:
        with torch.serialization.safe_globals(list(safe_globals)):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        for line in str(exc).splitlines():
            if "GLOBAL" in line or "Unsupported" in line:
                reason = line.strip()
                break
        raise UnsafeCheckpointError(
            f"{path}: refusing to load — the file needs pickled objects beyond tensors and plain containers "
            f"({reason}). vitontrain loads checkpoints with torch.load(weights_only=True) only, so a file cannot "
            f"run code. If you trust the file, pass the class(es) it needs via safe_globals=[...], or extract its "
            f"state dict once in a trusted environment and re-save it with vitontrain.checkpoints.save_official "
            f"or save_safetensors.") from exc
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError) as exc:
        # a truncated zip, a text file, a stray tarball: torch's own messages rarely name the file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({type(exc).__name__}: {first})") from exc


def extract_state_dict(obj: Any, source: str = "<object>") -> dict[str, torch.Tensor]:
    """The tensor mapping of a checkpoint: ``obj["state_dict"]`` (Lightning / official layout) or ``obj`` itself."""
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{source}: expected a state dict (mapping of tensors), got {type(obj).__name__}")
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{source}: {len(bad)} entries are not tensors, e.g. {bad[:5]} — not a state dict")
    return dict(obj)


def read_state_dict(path: str | Path, safe_globals: Iterable[Any] = ()) -> dict[str, torch.Tensor]:
    return extract_state_dict(read_checkpoint(path, safe_globals), str(path))


# --------------------------------------------------------------------------------------------------------- loading
def compare_state_dict(module: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "<state dict>",
                       target: str | None = None) -> LoadReport:
    """Missing / unexpected / shape-mismatched keys of ``state_dict`` against ``module.state_dict()``."""
    expected = module.state_dict()
    report = LoadReport(source=source, target=target or type(module).__name__)
    report.missing = [k for k in expected if k not in state_dict]
    report.unexpected = [k for k in state_dict if k not in expected]
    report.mismatched = [(k, tuple(expected[k].shape), tuple(v.shape)) for k, v in state_dict.items()
                         if k in expected and tuple(v.shape) != tuple(expected[k].shape)]
    return report


def load_state_dict_into(module: nn.Module, state_dict: Mapping[str, torch.Tensor], strict: bool = True,
                         source: str = "<state dict>", target: str | None = None,
                         drop: Iterable[str] = ()) -> LoadReport:
    """Load with a by-name report. ``drop``: keys removed beforehand (reported as dropped, never as unexpected).

    strict: any missing / unexpected / mismatched key raises :class:`StateDictMismatchError` and nothing is loaded.
    Non-strict: the matching keys are loaded, the rest is reported (and logged as a warning).
    """
    drop = set(drop)
    sd = {k: v for k, v in state_dict.items() if k not in drop}
    report = compare_state_dict(module, sd, source, target)
    report.dropped = [k for k in state_dict if k in drop]
    if strict and not report.ok:
        raise StateDictMismatchError(report)
    bad = {k for k, _, _ in report.mismatched} | set(report.unexpected)
    loadable = {k: v for k, v in sd.items() if k not in bad}
    module.load_state_dict(loadable, strict=False)
    report.loaded = len(loadable)
    (logger.info if report.ok else logger.warning)("%s", report.summary())
    return report


def load_stableviton(model: nn.Module, path_or_state_dict: str | Path | Mapping[str, torch.Tensor],
                     strict: bool = True, safe_globals: Iterable[Any] = (),
                     source: str | None = None) -> LoadReport:
    """Load ``VITONHD.ckpt``, ``VITONHD_PBE_pose.ckpt`` or one of our checkpoints into a StableVITONModel."""
    if isinstance(path_or_state_dict, Mapping):
        sd, source = extract_state_dict(path_or_state_dict), source or "<state dict>"
    else:
        sd, source = read_state_dict(path_or_state_dict, safe_globals), str(path_or_state_dict)
    drop = [POSITION_IDS_KEY] if POSITION_IDS_KEY in sd and POSITION_IDS_KEY not in model.state_dict() else []
    return load_state_dict_into(model, sd, strict, source, type(model).__name__, drop=drop)


def load_vae_finetune(model: nn.Module, path_or_state_dict: str | Path | Mapping[str, torch.Tensor],
                      strict: bool = True, safe_globals: Iterable[Any] = (),
                      source: str | None = None) -> LoadReport:
    """Load ``VITONHD_VAE_finetuning.ckpt`` into ``model.first_stage_model`` (or into an AutoencoderKL).

    Every key containing ``"loss."`` (the LPIPS/discriminator weights of the VAE trainer) is dropped, as in the
    official ``train.py``.
    """
    vae = getattr(model, "first_stage_model", model)
    if isinstance(path_or_state_dict, Mapping):
        sd, source = extract_state_dict(path_or_state_dict), source or "<state dict>"
    else:
        sd, source = read_state_dict(path_or_state_dict, safe_globals), str(path_or_state_dict)
    drop = [k for k in sd if "loss." in k]
    return load_state_dict_into(vae, sd, strict, source, "first_stage_model", drop=drop)


def stableviton_state_from_pbe(pbe_state_dict: Mapping[str, torch.Tensor],
                               model: nn.Module) -> tuple[dict[str, torch.Tensor], list[str], list[str]]:
    """Map a Paint-by-Example state dict onto the StableVITON layout (ControlNet ``tool_add_control.py``).

    Returns ``(state_dict, fresh_keys, dropped_keys)``: ``fresh_keys`` are taken from ``model`` as initialised
    (cond_first_block, warp blocks, zero convs, lastzc, and schedule buffers if the PBE file lacks them).
    """
    target = model.state_dict()
    dropped = [k for k in pbe_state_dict if k == POSITION_IDS_KEY and k not in target]
    sd = {k: v for k, v in pbe_state_dict.items() if k not in dropped}
    if CONV_IN_KEY not in sd:
        raise CheckpointError(f"not a Paint-by-Example checkpoint: no {CONV_IN_KEY}")
    w, want = sd[CONV_IN_KEY], target[CONV_IN_KEY].shape
    if w.ndim != 4 or w.shape[0] != want[0] or w.shape[2:] != want[2:] or w.shape[1] > want[1]:
        raise CheckpointError(f"{CONV_IN_KEY}: file {list(w.shape)} cannot be zero-padded to model {list(want)}")
    if w.shape[1] < want[1]:  # 9 -> 13: the DensePose-latent channels start at zero
        sd[CONV_IN_KEY] = torch.cat([w, w.new_zeros(w.shape[0], want[1] - w.shape[1], *w.shape[2:])], dim=1)
    for k in target:
        if not k.startswith("control_model."):
            continue
        rest = k[len("control_model."):]
        if rest.startswith(ENCODER_PARTS) and UNET_PREFIX + rest in sd:
            sd[k] = sd[UNET_PREFIX + rest]
    fresh = [k for k in target if k not in sd and (k.startswith(NEW_IN_STABLEVITON) or k in SCHEDULE_BUFFERS)]
    for k in fresh:
        sd[k] = target[k]
    return sd, fresh, dropped


def init_from_paint_by_example(model: nn.Module, path_or_state_dict: str | Path | Mapping[str, torch.Tensor],
                               strict: bool = True, safe_globals: Iterable[Any] = (),
                               source: str | None = None) -> LoadReport:
    """Build the StableVITON starting checkpoint from a public Paint-by-Example checkpoint, in place.

    Call it on a freshly built model (its new parts keep their initialisation). strict: every PBE-provided key
    must exist in our model and every key we need (UNet, VAE, CLIP, mapper, final_ln, proj_out, learnable_vector)
    must be in the file.
    """
    if isinstance(path_or_state_dict, Mapping):
        pbe, source = extract_state_dict(path_or_state_dict), source or "<Paint-by-Example state dict>"
    else:
        pbe, source = read_state_dict(path_or_state_dict, safe_globals), str(path_or_state_dict)
    sd, fresh, dropped = stableviton_state_from_pbe(pbe, model)
    report = load_state_dict_into(model, sd, strict, source, type(model).__name__, drop=dropped)
    n_ctrl = sum(1 for k in sd if k.startswith("control_model.") and k not in fresh)
    report.notes = [f"conv_in zero-padded to {list(sd[CONV_IN_KEY].shape)}",
                    f"{n_ctrl} spatial-encoder tensors copied from the UNet encoder",
                    f"{len(fresh)} tensors kept at their initialisation (new StableVITON parts / schedule)"]
    logger.info("%s", report.summary())
    return report


# ---------------------------------------------------------------------------------------------------------- saving
def _cpu_state_dict(model_or_state_dict: nn.Module | Mapping[str, torch.Tensor]) -> "OrderedDict[str, torch.Tensor]":
    sd = (model_or_state_dict.state_dict() if isinstance(model_or_state_dict, nn.Module)
          else model_or_state_dict)
    return OrderedDict((k, v.detach().cpu().contiguous()) for k, v in sd.items())


def save_official(model_or_state_dict: nn.Module | Mapping[str, torch.Tensor], path: str | Path,
                  **extra: int | float | str) -> Path:
    """Torch file ``{"state_dict": …, **extra}`` — the layout the official ``inference.py`` loads (strict)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": _cpu_state_dict(model_or_state_dict), **extra}, path)
    return path


def save_safetensors(model_or_state_dict: nn.Module | Mapping[str, torch.Tensor], path: str | Path,
                     metadata: Mapping[str, str] | None = None) -> Path:
    """A ``.safetensors`` file with the same keys (no pickle at all)."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"{path}: a safetensors file must end in .safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": "pt", "layout": "stableviton-controlldm"}
    meta.update(metadata or {})
    save_file(dict(_cpu_state_dict(model_or_state_dict)), str(path), metadata=meta)
    return path
