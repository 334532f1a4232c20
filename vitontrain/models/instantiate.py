"""``target``/``params`` configs for vitontrain's model graph (the dialect of ldm/sgm/StableVITON configs).

Only classes inside the ``vitontrain.`` package may be instantiated: a config file cannot make us import or call
arbitrary code. Errors are vitonprep's one ``ConfigError`` (also reachable as ``vitontrain.models.ConfigError``).
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any, Mapping

import yaml

from vitonprep import ConfigError, train_config_path

logger = logging.getLogger(__name__)

ALLOWED_PREFIX = "vitontrain."


def get_obj_from_str(target: str) -> Any:
    """Import ``package.module.Name`` — only below ``vitontrain.``."""
    if not isinstance(target, str) or not target.startswith(ALLOWED_PREFIX) or "." not in target[len(ALLOWED_PREFIX):]:
        raise ConfigError(f"target {target!r} is not allowed: only classes inside the '{ALLOWED_PREFIX[:-1]}' "
                          f"package can be instantiated (e.g. 'vitontrain.models.unet.StableVITONUNet')")
    module_name, _, name = target.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"target {target!r}: cannot import module {module_name!r} ({exc})") from exc
    try:
        return getattr(module, name)
    except AttributeError as exc:
        raise ConfigError(f"target {target!r}: module {module_name!r} has no attribute {name!r}") from exc


def instantiate_from_config(config: Mapping[str, Any], **overrides: Any) -> Any:
    """``{"target": "vitontrain.…Class", "params": {...}}`` → ``Class(**params, **overrides)``."""
    if not isinstance(config, Mapping) or "target" not in config:
        raise ConfigError(f"expected a mapping with a 'target' key (and optional 'params'), got {config!r:.200}")
    unknown = set(config) - {"target", "params"}
    if unknown:
        raise ConfigError(f"config for {config['target']!r}: unknown keys {sorted(unknown)} "
                          f"(only 'target' and 'params' are allowed)")
    params = dict(config.get("params") or {})
    params.update(overrides)
    cls = get_obj_from_str(config["target"])
    try:
        return cls(**params)
    except TypeError as exc:
        raise ConfigError(f"cannot instantiate {config['target']}: {exc}") from exc


def resolve_train_config(name_or_path: str | Path) -> Path:
    """A YAML path, or the name of a shipped one (``stableviton``, ``tiny``: package data of vitonprep, so a wheel
    install has them; ``pipelines/train/`` in a checkout); FileNotFoundError naming the known names otherwise."""
    return train_config_path(name_or_path)


def load_config(path: str | Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        try:
            config = yaml.safe_load(fh)
        except yaml.YAMLError as exc:  # one line: YAML's own message spans several, with a caret drawing
            raise ConfigError(f"{path}: invalid YAML: {' '.join(str(exc).split())}") from exc
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a YAML mapping at the top level")
    return config


def build_model(config_path_or_dict: str | Path | Mapping[str, Any]) -> Any:
    """Build the model of a config file or dict.

    Accepts either the whole file layout ``{"model": {target, params}, …}`` (other top-level sections — checkpoints,
    validation, … — belong to the trainer and are ignored here) or a bare ``{target, params}`` mapping. To build
    without allocating weights, call it inside ``with torch.device("meta"):``.
    """
    if isinstance(config_path_or_dict, (str, Path)):
        config: Mapping[str, Any] = load_config(config_path_or_dict)
        where = str(config_path_or_dict)
    else:
        config = config_path_or_dict
        where = "<dict>"
    model_cfg = config["model"] if "model" in config else config
    try:
        return instantiate_from_config(model_cfg)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
