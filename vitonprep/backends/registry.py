"""The one registry of back-ends: ``kind -> name -> "module:Class"``.

Only the class path is written here; name, approximate flag, licence and weight files are read from the class
(see `vitonprep.backends.protocols`). A back-end module is imported when its name is first asked for
(`importlib`), so a pipeline that does not use torch never imports it. `make_backend` builds the back-end from a
`BackendChoice`: its ``params`` go through the class's frozen ``Config`` (an unknown or invalid parameter is a
`ConfigError` naming ``stages.<kind>.params``) and the constructor looks the weight files up (a missing file is a
`ConfigError` naming ``stages.<kind>``), all before any image is touched.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from vitonprep.assemble import Producer
from vitonprep.backends.protocols import KINDS, Backend
from vitonprep.config import BackendChoice
from vitonprep.errors import ConfigError, MissingWeightsError

__all__ = ["BACKENDS", "Producer", "backend_class", "make_backend", "producer_of", "backend_names"]

#: kind -> back-end name -> "module:Class". Adding a back-end = its module + one line here.
BACKENDS: dict[str, dict[str, str]] = {
    "pose": {
        "pose-mediapipe-blazepose": "vitonprep.backends.pose_mediapipe:MediapipePose",
        "pose-openpose-body": "vitonprep.backends.pose_openpose:OpenPoseBody",
    },
    "person": {
        "person-mediapipe": "vitonprep.backends.person_mediapipe:MediapipePerson",
    },
    "parsing": {
        "parsing-heuristic-mediapipe": "vitonprep.backends.parsing_heuristic:HeuristicParser",
        "parsing-schp": "vitonprep.backends.parsing_schp:SCHPCIHPParser",
    },
    "densepose": {
        "densepose-approx-parse": "vitonprep.backends.densepose_approx:ApproxDensePose",
        "densepose-rcnn-r50-fpn": "vitonprep.backends.densepose_rcnn:DensePoseRCNN",
    },
    "cloth_mask": {
        "cloth-mask-opencv": "vitonprep.backends.cloth_mask_opencv:OpenCVClothMask",
        "cloth-mask-sam": "vitonprep.backends.cloth_mask_sam:SAMClothMask",
    },
    "caption": {
        "garment-tags-geometric": "vitonprep.captions:GeometricTagger",
        "garment-tags-file": "vitonprep.captions:FileTagger",
        "garment-tags-clip": "vitonprep.captions:ClipTagger",
    },
    "quality": {},  # the quality stage comes with issue 17
}
assert tuple(BACKENDS) == KINDS


def backend_names(kind: str) -> list[str]:
    return sorted(BACKENDS[kind])


def backend_class(kind: str, name: str) -> type[Backend]:
    """The class registered as ``name`` for ``kind`` (its module imported now); ConfigError for an unknown name."""
    known = BACKENDS[kind]
    if name not in known:
        raise ConfigError(f"stages.{kind}.backend: unknown back-end {name!r}; known: {sorted(known)}")
    module_name, _, class_name = known[name].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if cls.NAME != name or cls.KIND != kind:  # the table and the class must agree (a wrong line is a bug)
        raise RuntimeError(f"registry line {kind}/{name} points at {cls.__name__} ({cls.KIND}/{cls.NAME})")
    return cls


def make_backend(kind: str, choice: BackendChoice, weights_dir: str | Path | None = None) -> Backend:
    """Build the back-end ``choice`` names, with ``choice.params`` through its Config; nothing is loaded yet."""
    cls = backend_class(kind, choice.backend)
    try:
        config = cls.Config(**dict(choice.params))
    except (TypeError, ValueError) as exc:  # unknown or invalid parameters
        raise ConfigError(f"stages.{kind}.params ({choice.backend}): {exc}") from exc
    try:
        return cls(config, Path(weights_dir) if weights_dir else None)
    except MissingWeightsError as exc:
        raise ConfigError(f"stages.{kind} ({choice.backend}): {exc}") from exc
    except (TypeError, ValueError) as exc:  # a parameter the constructor checks against its weight files
        raise ConfigError(f"stages.{kind}.params ({choice.backend}): {exc}") from exc


def producer_of(backend: Backend, note: str | None = None, approximate: bool = False) -> Producer:
    """The producer record of ``backend``'s output: its name, its APPROXIMATE flag (or ``approximate``, when an
    input it read was approximate) and its note plus the device note (nothing on the CPU)."""
    text = backend.note if note is None else note
    extra = backend.device_note
    if extra:
        text = f"{text}; {extra}" if text else extra
    return Producer(backend.NAME, bool(backend.APPROXIMATE or approximate), text)
