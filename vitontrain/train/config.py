"""The `vitontrain fit` configuration: one YAML in ``pipelines/train/`` with ``model``, ``init``, ``data`` and
``train`` sections, resolved once (with dotted overrides) into frozen dataclasses. Unknown keys are errors.

The resolved config goes back to YAML (:func:`config_to_yaml`) for the run folder and every checkpoint, and is read
back from there by :func:`config_from_yaml` with the same strict rules: a checkpoint's config is untrusted text."""

from __future__ import annotations

import copy
import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vitonprep import ConfigError, apply_dotted_overrides, config_from_mapping
from vitontrain.data.module import DataConfig
from vitontrain.models.instantiate import resolve_train_config

_YAML11_MISSED_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")
PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")


@dataclass(frozen=True)
class InitConfig:
    """Weights to start from (paths; empty = random initialisation)."""

    stableviton: str = ""          # an official VITONHD.ckpt / our checkpoint (strict)
    paint_by_example: str = ""     # PBE checkpoint for the official stage-1 start (9→13 channels, encoder copied)
    vae: str = ""                  # the VAE fine-tune (VITONHD_VAE_finetuning.ckpt)
    # Smoke runs without weights: fill the frozen UNet's zero-initialised output layers randomly, as pretrained
    # weights would be non-zero (otherwise no gradient reaches the trained parts). Never for real training.
    stand_in_pretrained: bool = False


@dataclass(frozen=True)
class EMAConfig:
    enabled: bool = False
    decay: float = 0.9999
    every_n_steps: int = 1

    def __post_init__(self) -> None:
        if not 0.0 < self.decay < 1.0 or self.every_n_steps < 1:
            raise ConfigError(f"train.ema: decay must be in (0, 1) and every_n_steps >= 1, got {self}")


@dataclass(frozen=True)
class TrainConfig:
    out_dir: str = "runs/stableviton"
    seed: int = 0
    stage: int = 1                          # 1: ε-MSE; 2: + ATV loss (×atv_weight, blocks model.atv_blocks)
    lr: float = 1.0e-4
    weight_decay: float = 0.01              # torch AdamW default, what the official optimizer uses
    betas: tuple[float, float] = (0.9, 0.999)
    max_steps: int = 1000
    precision: str = "32-true"
    accumulate_grad_batches: int = 1
    gradient_clip_val: float | None = None
    # None = as the model config says; auto = off when the GPU holds the step without it (train/memory.py)
    gradient_checkpointing: bool | str | None = None
    ema: EMAConfig = field(default_factory=EMAConfig)
    checkpoint_every_n_steps: int = 500     # 0 = no periodic checkpoints
    keep_checkpoints: int = 2               # newest step checkpoints kept (plus last.ckpt)
    save_last: bool = True                  # save the final step when training ends (unless just saved)
    sample_every_n_steps: int = 500         # paired/unpaired sample grids; 0 = never
    sample_count: int = 4
    sample_steps: int = 20                  # DDIM steps for the grids
    sample_guidance: float = 5.0            # the official logger's CFG scale
    log_every_n_steps: int = 10
    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    strategy: str = "auto"                  # >1 process: DDP, static graph (fit.resolve_strategy)
    deterministic: bool = False             # True: reproducible kernels; False: cuDNN benchmarks its conv kernels
    channels_last: bool = True              # NHWC convolutions (tensor cores read them without transposes)

    def __post_init__(self) -> None:
        if self.stage not in (1, 2):
            raise ConfigError(f"train.stage must be 1 or 2, got {self.stage}")
        if self.precision == "bf16-true":
            raise ConfigError("train.precision 'bf16-true' keeps the trained weights in bf16, where AdamW updates of "
                              "~1e-4 of a weight round away (8 bits of mantissa); use bf16-mixed (fp32 weights, bf16 "
                              "compute)")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"train.precision must be one of {PRECISIONS}, got {self.precision!r}")
        if not (self.gradient_checkpointing is None or isinstance(self.gradient_checkpointing, bool)
                or self.gradient_checkpointing == "auto"):
            raise ConfigError(f"train.gradient_checkpointing must be true, false, auto or null, got "
                              f"{self.gradient_checkpointing!r}")
        if (self.checkpoint_every_n_steps < 0 or self.sample_every_n_steps < 0
                or self.keep_checkpoints < 1 and self.keep_checkpoints != -1):
            raise ConfigError("train.checkpoint_every_n_steps and train.sample_every_n_steps must be >= 0 (0 = never), "
                              "train.keep_checkpoints >= 1 (-1 = keep all)")
        if self.max_steps < 1 or self.accumulate_grad_batches < 1:
            raise ConfigError("train.max_steps and train.accumulate_grad_batches must be >= 1")
        if self.num_nodes > 1 and not Path(self.out_dir).is_absolute():
            raise ConfigError(f"train.out_dir {self.out_dir!r}: with num_nodes > 1 it must be an absolute path on a "
                              f"file system every node shares (resume reads last.ckpt there on every rank)")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"train.strategy must be one of {STRATEGIES}, got {self.strategy!r}: others (fsdp, "
                              f"deepspeed, …) restore checkpoints with their own full unpicklers, bypassing the "
                              f"weights-only reader every checkpoint goes through")


#: Lightning strategies whose resume reads the checkpoint file through the trainer's CheckpointIO (ours: weights
#: only). FSDP, DeepSpeed and XLA load sharded or lazy checkpoints with pickle directly.
STRATEGIES = ("auto", "ddp", "ddp_find_unused_parameters_true", "ddp_find_unused_parameters_false", "ddp_spawn",
              "ddp_fork")


@dataclass(frozen=True)
class FitConfig:
    model: dict[str, Any]
    data: DataConfig
    train: TrainConfig = field(default_factory=TrainConfig)
    init: InitConfig = field(default_factory=InitConfig)
    source: str = ""

    def model_config(self) -> dict[str, Any]:
        """The model's target/params with the training-time switches of this config applied."""
        cfg = copy.deepcopy(self.model)
        params = cfg.setdefault("params", {})
        params["use_atv_loss"] = self.train.stage == 2
        if isinstance(self.train.gradient_checkpointing, bool):  # None and auto (until decided): the model's own
            params["gradient_checkpointing"] = self.train.gradient_checkpointing
        return cfg


def resolve_config_path(name_or_path: str | Path) -> Path:
    try:
        return resolve_train_config(name_or_path)
    except FileNotFoundError as exc:
        raise ConfigError(f"training {exc}") from None


def yaml_reason(exc: yaml.YAMLError, where: str = "") -> str:
    """A YAML error in one line (its own message spans several, with a caret drawing)."""
    mark = getattr(exc, "problem_mark", None)
    at = f" at line {mark.line + 1}, column {mark.column + 1}{' ' + where if where else ''}" if mark is not None else ""
    return f"{getattr(exc, 'problem', None) or ' '.join(str(exc).split())}{at}"


def parse_override(text: str) -> tuple[str, Any]:
    """``data.batch_size=4`` → ("data.batch_size", 4); the value is read as YAML (numbers, lists, null, …)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected KEY=VALUE, e.g. train.max_steps=50")
    key, value = text.split("=", 1)
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({yaml_reason(exc, 'of the value')})") from exc
    if isinstance(parsed, str) and _YAML11_MISSED_FLOAT.fullmatch(parsed):
        parsed = float(parsed)  # YAML 1.1 reads "1e-3" as a string; nobody means that on a command line
    return key.strip(), parsed


def load_fit_config(name_or_path: str | Path, overrides: list[str] | dict[str, Any] | None = None) -> FitConfig:
    path = resolve_config_path(name_or_path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {yaml_reason(exc)}") from exc
    if isinstance(overrides, list):
        overrides = dict(parse_override(o) for o in overrides)
    apply_dotted_overrides(data, overrides or {})
    if "data" not in data:
        raise ConfigError(f"{path}: no `data` section; this is a model-only config (set data.shards=... to train)")
    data["source"] = str(path)
    return _fit_config(data, str(path))


def _fit_config(data: Any, where: str) -> FitConfig:
    try:
        return config_from_mapping(FitConfig, data, where)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _plain(value: Any) -> Any:
    """Dataclass fields as YAML-safe values (tuples become lists; the strict loader turns them back)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def config_to_yaml(cfg: FitConfig) -> str:
    """The resolved config as YAML: ``--set`` overrides applied, the ``init.*`` paths made absolute (a checkpoint
    rebuilds its frozen weights from them, from wherever it is used)."""
    init = {k: (str(Path(v).resolve()) if isinstance(v, str) and v else v)
            for k, v in dataclasses.asdict(cfg.init).items()}
    data = _plain(dataclasses.asdict(cfg))
    data["init"] = init
    return yaml.safe_dump(data, sort_keys=False)


def config_from_yaml(text: str, where: str) -> FitConfig:
    """A config written by :func:`config_to_yaml`, read back strictly (``where`` names it in errors)."""
    if not isinstance(text, str):
        raise ConfigError(f"{where}: the training config must be YAML text, got {type(text).__name__}")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: invalid YAML: {yaml_reason(exc)}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: the training config is not a YAML mapping")
    return _fit_config(data, where)
