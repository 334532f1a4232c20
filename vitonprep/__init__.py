"""vitonprep: make, check and convert VITON-HD-style virtual try-on datasets as WebDataset shards.

The public library API is ``vitonprep.api``: ``build``, ``convert``, ``validate``, ``export`` (every command's
library twin), ``load_pipeline``, ``prepare_pair`` (one pair in memory) and ``convert_samples`` (a dataset
converted in memory). ``build``, ``convert``, ``validate`` and ``export`` are also the names of this package's
modules (``vitonprep.build`` ...), and Python binds a package attribute to a submodule as soon as it is imported:
call them as ``vitonprep.api.build(...)`` or ``from vitonprep.api import build``. The other API names, the errors,
the configuration helpers and the shard contract's constants are offered here as well.

``import vitonprep`` stays light on purpose: every build and validate worker process imports the package root
(``vitonprep.entry`` explains why), so only the errors and the schema are imported here. The other names are
resolved on first use by the module-level ``__getattr__`` (PEP 562), which imports the module that defines them
(the API pulls in the pipeline, OpenCV and mediapipe's wrappers; ``PARULA_RGB`` needs OpenCV).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from vitonprep.errors import ConfigError, SampleError, VitonprepError
from vitonprep.schema import FIELDS, SCHEMA_VERSION

__version__ = "0.1.0"

#: public name -> the module that defines it, imported on first access
_LAZY: dict[str, str] = {
    "api": "vitonprep.api",  # the module itself: build/convert/validate/export are called through it (docstring)
    "convert_samples": "vitonprep.api",
    "load_pipeline": "vitonprep.api",
    "prepare_pair": "vitonprep.api",
    "EXPORT_FORMATS": "vitonprep.api",
    "BuildReport": "vitonprep.api",
    "ConvertReport": "vitonprep.api",
    "ExportReport": "vitonprep.api",
    "ValidationReport": "vitonprep.api",
    "PipelineConfig": "vitonprep.config",
    "apply_dotted_overrides": "vitonprep.config",
    "config_from_mapping": "vitonprep.config",
    "load_pipeline_config": "vitonprep.config",  # = load_pipeline, the name vitonprep.config has always used
    "train_config_path": "vitonprep.config",
    "resolve_device": "vitonprep.backends.devices",
    "PARULA_RGB": "vitonprep.derive.densepose",
    "Sample": "vitonprep.shards",  # what prepare_pair returns and convert_samples yields
    "Failure": "vitonprep.shards",  # what convert_samples yields for an input it cannot use
}

__all__ = [  # the names above (a literal list, for linters and type checkers) plus the eager ones
    "EXPORT_FORMATS", "FIELDS", "PARULA_RGB", "SCHEMA_VERSION", "BuildReport", "ConfigError", "ConvertReport",
    "ExportReport", "Failure", "PipelineConfig", "Sample", "SampleError", "ValidationReport", "VitonprepError",
    "__version__", "api", "apply_dotted_overrides", "config_from_mapping", "convert_samples", "load_pipeline",
    "load_pipeline_config", "prepare_pair", "resolve_device", "train_config_path",
]

if TYPE_CHECKING:  # type checkers and IDEs see the lazy names as ordinary imports
    from vitonprep import api
    from vitonprep.api import (
        EXPORT_FORMATS,
        BuildReport,
        ConvertReport,
        ExportReport,
        ValidationReport,
        convert_samples,
        load_pipeline,
        prepare_pair,
    )
    from vitonprep.backends.devices import resolve_device
    from vitonprep.config import (
        PipelineConfig,
        apply_dotted_overrides,
        config_from_mapping,
        load_pipeline_config,
        train_config_path,
    )
    from vitonprep.derive.densepose import PARULA_RGB
    from vitonprep.shards import Failure, Sample


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vitonprep' has no attribute {name!r}")
    imported = importlib.import_module(module)
    value = imported if name == "api" else getattr(imported, name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
