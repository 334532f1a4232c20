"""Pipeline configuration: YAML on disk, resolved once at the CLI into frozen dataclasses.

Unknown keys and wrong types are errors that name the YAML file and the key; nothing below the CLI reads YAML.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vitonprep.errors import ConfigError
from vitonprep.schema import CATEGORIES, PERSON_SIZE, SPLITS

PIPELINES_DIR = Path(__file__).resolve().parents[1] / "pipelines"


@dataclass(frozen=True)
class BackendChoice:
    """One model stage: which back-end (by registry name) and its parameters."""

    backend: str
    params: dict[str, Any] = field(default_factory=dict)


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
        if tuple(self.size) != PERSON_SIZE:
            raise ConfigError(f"size: only {PERSON_SIZE} (VITON-HD) is supported, got {self.size}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _build(cls: type, data: Any, where: str) -> Any:
    """Recursively build dataclass ``cls`` from plain YAML data, refusing unknown keys and wrong types."""
    if not dataclasses.is_dataclass(cls):
        return _coerce(cls, data, where)
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


def load_pipeline_config(path: Path | str, overrides: dict[str, Any] | None = None) -> PipelineConfig:
    """Read a pipeline YAML (a path, or a name of a file in ``pipelines/``) and apply dotted overrides."""
    p = Path(path)
    if not p.is_file():
        cand = PIPELINES_DIR / f"{path}.yaml"
        if cand.is_file():
            p = cand
        else:
            known = sorted(x.stem for x in PIPELINES_DIR.glob("*.yaml"))
            raise ConfigError(f"pipeline {path!s} not found (not a file, not one of {known})")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: invalid YAML: {exc}") from exc
    for dotted, value in (overrides or {}).items():
        node = data
        parts = dotted.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return _build(PipelineConfig, data, str(p))
