"""Pipeline configuration: YAML on disk, resolved once at the CLI into frozen dataclasses.

Unknown keys and wrong types are errors that name the YAML file and the key; nothing below the CLI reads YAML.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vitonprep.errors import ConfigError
from vitonprep.quality.config import QualityConfig, quality_config_from_mapping
from vitonprep.schema import CATEGORIES, PERSON_SIZE, SPLITS

#: the shipped pipelines (``default``, ``vitonhd-reference``) and, in ``train/``, vitontrain's configs. They are
#: package data, so a wheel install has them; in a checkout ``vitonprep/pipelines`` is a link to the top-level
#: ``pipelines/`` folder users read and edit (one copy in git), and paths are reported through the link's target.
PIPELINES_DIR = (Path(__file__).resolve().parent / "pipelines").resolve()
TRAIN_CONFIGS_DIR = PIPELINES_DIR / "train"
#: default pixel budget of an input photo (width x height, read from its header before decoding): 50 MP holds a
#: 48 MP phone photo (8064x6048) and keeps a worker's peak memory near 1 GB; a decompression bomb or a huge scan is
#: one recorded failure, refused in microseconds
MAX_PHOTO_PIXELS = 50_000_000


@dataclass(frozen=True)
class StageResources:
    """Where a model stage runs under ``--distributor ray`` (the local runner ignores this block).

    ``actors: 0`` (the default) runs the stage inside each shard worker, like the local runner. ``actors: N``
    gives the stage N dedicated Ray actors, each reserving ``num_cpus``/``num_gpus`` and loading its model once;
    shard workers send them ``batch_size`` samples per call, so a GPU back-end sees batches.
    """

    actors: int = 0
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    batch_size: int = 1

    def __post_init__(self) -> None:
        if self.actors < 0 or self.batch_size < 1 or self.num_cpus < 0 or self.num_gpus < 0:
            raise ConfigError(f"needs actors >= 0, batch_size >= 1, num_cpus/num_gpus >= 0; got {self}")
        if self.num_gpus > 0 and self.actors == 0:
            # a shard worker is a CPU process: a GPU request is only honoured by dedicated actors
            raise ConfigError("num_gpus > 0 needs actors >= 1 (GPU stages run in their own actors)")


@dataclass(frozen=True)
class BackendChoice:
    """One model stage: which back-end (by registry name), its parameters, and its Ray resources."""

    backend: str
    params: dict[str, Any] = field(default_factory=dict)
    resources: StageResources = StageResources()


@dataclass(frozen=True)
class PersonPolicy:
    several: str = "largest"  # "largest": keep the person the pose model tracks; "reject": record a failure
    min_height_frac: float = 0.25  # the person's mask must span at least this fraction of the image height
    required_joints: tuple[str, ...] = ("Neck", "RShoulder", "LShoulder", "RHip", "LHip")


@dataclass(frozen=True)
class StagesConfig:
    pose: BackendChoice
    person: BackendChoice
    parsing: BackendChoice
    densepose: BackendChoice
    cloth_mask: BackendChoice
    #: garment tags/caption (vitonprep.captions back-end name); "none" writes no caption.json
    caption: BackendChoice = BackendChoice("none")
    #: pose back-end run on the garment photo (TryOnDiffusion's garment-wearer pose); "none" skips it
    garment_pose: BackendChoice = BackendChoice("none")


#: what the build does with a sample the quality checks flag: keep it (marked in its meta.json) or drop it (a
#: recorded failure of stage ``quality``)
ON_FLAG = ("keep", "drop")


@dataclass(frozen=True)
class QualityPolicy:
    """The ``quality:`` section: whether the build runs the quality checks, what a flag does, and the checks'
    thresholds. In the YAML the thresholds sit flat beside ``enabled``/``on_flag`` (the section ``vitonprep quality
    --config`` reads); they are resolved by `vitonprep.quality.config.quality_config_from_mapping`, which owns
    their names, types and defaults."""

    enabled: bool = True
    on_flag: str = "keep"
    thresholds: QualityConfig = QualityConfig()

    def __post_init__(self) -> None:
        if self.on_flag not in ON_FLAG:
            raise ConfigError(f"on_flag: {self.on_flag!r} is not one of {', '.join(ON_FLAG)}")

    def to_dict(self) -> dict[str, Any]:
        """The YAML form: the policy and every threshold, flat."""
        return {"enabled": self.enabled, "on_flag": self.on_flag, **dataclasses.asdict(self.thresholds)}


def quality_policy_from_mapping(data: Any, where: str) -> QualityPolicy:
    """`QualityPolicy` from the ``quality:`` mapping; a wrong policy value or an unknown threshold is a ConfigError
    naming ``where`` and the key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    rest = dict(data)
    enabled, on_flag = rest.pop("enabled", True), rest.pop("on_flag", "keep")
    if not isinstance(enabled, bool):
        raise ConfigError(f"{where}.enabled: expected true or false, got {enabled!r}")
    if on_flag not in ON_FLAG:
        raise ConfigError(f"{where}.on_flag: {on_flag!r} is not one of {', '.join(ON_FLAG)}")
    return QualityPolicy(enabled, on_flag, quality_config_from_mapping(rest, where))


@dataclass(frozen=True)
class PipelineConfig:
    name: str
    stages: StagesConfig
    size: tuple[int, int] = PERSON_SIZE
    fit: str = "pad"  # "pad" | "crop"
    category: str = "upper_body"
    split: str = "train"
    samples_per_shard: int = 50
    persons: PersonPolicy = PersonPolicy()
    description: str = ""
    weights_dir: str = ""  # folder searched for back-end weight files (--weights-dir); "" = only params / env
    max_photo_pixels: int = MAX_PHOTO_PIXELS  # larger input photos are recorded failures, never decoded
    quality: QualityPolicy = QualityPolicy()  # the quality checks of every built sample (docs/architecture.md)

    def __post_init__(self) -> None:
        if self.fit not in ("pad", "crop"):
            raise ConfigError(f"fit: {self.fit!r} is not one of pad, crop")
        if self.category not in CATEGORIES:
            raise ConfigError(f"category: {self.category!r} is not one of {CATEGORIES}")
        if self.split not in SPLITS:
            raise ConfigError(f"split: {self.split!r} is not one of {SPLITS}")
        if self.persons.several not in ("largest", "reject"):
            raise ConfigError(f"persons.several: {self.persons.several!r} is not one of largest, reject")
        if self.samples_per_shard < 1:
            raise ConfigError("samples_per_shard must be >= 1")
        if self.max_photo_pixels < 64 * 64:
            raise ConfigError(f"max_photo_pixels must be at least {64 * 64}, got {self.max_photo_pixels}")
        if tuple(self.size) != PERSON_SIZE:
            raise ConfigError(f"size: only {PERSON_SIZE} (VITON-HD) is supported, got {self.size}")

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "quality": self.quality.to_dict()}


def _build(cls: type, data: Any, where: str) -> Any:
    """Recursively build dataclass ``cls`` from plain YAML data, refusing unknown keys and wrong types."""
    if not dataclasses.is_dataclass(cls):
        return _coerce(cls, data, where)
    if cls is QualityPolicy:  # its thresholds are flat beside the policy keys and belong to vitonprep.quality
        return quality_policy_from_mapping(data, where)
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(names)}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = _build(hints[f.name], data[f.name], f"{where}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{where}: missing required key {f.name!r}")
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        inner = args[0] if args else Any
        return tuple(_coerce(inner, v, where) for v in value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if origin in (typing.Union, types.UnionType):
        return value
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}")
    return value


def _shipped(name_or_path: str | os.PathLike, folder: Path) -> Path | None:
    """``name_or_path`` if it is a file, else ``folder/<name>.yaml`` if that is one, else None."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    candidate = folder / f"{name_or_path}.yaml"
    return candidate if candidate.is_file() else None


def _known(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.yaml"))


def pipeline_path(name_or_path: str | os.PathLike) -> Path:
    """A pipeline YAML path, or the file of a shipped pipeline by name; ConfigError naming the known ones."""
    path = _shipped(name_or_path, PIPELINES_DIR)
    if path is None:
        raise ConfigError(f"pipeline {name_or_path!s} not found (not a file, not one of {_known(PIPELINES_DIR)})")
    return path


def train_config_path(name_or_path: str | os.PathLike) -> Path:
    """A vitontrain config YAML path, or the file of a shipped one by name (``tiny``, ``stableviton``).

    Raises FileNotFoundError ``config NAME not found (not a file, not one of [...])``, for the caller to word
    (a training config, a model config)."""
    path = _shipped(name_or_path, TRAIN_CONFIGS_DIR)
    if path is None:
        raise FileNotFoundError(f"config {name_or_path} not found (not a file, not one of {_known(TRAIN_CONFIGS_DIR)})")
    return path


def load_pipeline_config(path: str | os.PathLike, overrides: dict[str, Any] | None = None) -> PipelineConfig:
    """Read a pipeline YAML (a path, or a name of a shipped pipeline) and apply dotted overrides."""
    p = pipeline_path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: invalid YAML: {exc}") from exc
    apply_dotted_overrides(data, overrides or {})
    return _build(PipelineConfig, data, str(p))


def config_from_mapping(cls: type, data: Any, where: str) -> Any:
    """Build frozen dataclass ``cls`` from YAML data with the same strict rules as pipelines (used by vitontrain)."""
    return _build(cls, data, where)


def apply_dotted_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Set ``{"a.b.c": value}`` entries in nested mappings (creating levels as needed); returns ``data``."""
    for dotted, value in overrides.items():
        node = data
        parts = dotted.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {dotted}: {part!r} is not a mapping")
            node = child
        node[parts[-1]] = value
    return data
