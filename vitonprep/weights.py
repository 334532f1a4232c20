"""Weight files of the reference back-ends: where each comes from, and where vitonprep looks for it.

Weights are never downloaded at run time. A back-end names its file with a `WeightSpec`; `find_weights` looks,
in order, at the explicit path from the pipeline config (`params.weights`), the `--weights-dir` option, then the
`VITONPREP_WEIGHTS_DIR` environment variable, and raises `MissingWeightsError` naming the file, where to get it
and every place it looked.
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vitonprep.backends.registry import BACKENDS, backend_class, make_backend
from vitonprep.config import BackendChoice
from vitonprep.errors import ConfigError, MissingWeightsError, VitonprepError

logger = logging.getLogger(__name__)

ENV_VAR = "VITONPREP_WEIGHTS_DIR"


@dataclass(frozen=True)
class WeightSpec:
    name: str
    filename: str
    source: str  # URL/page to get it from
    licence: str
    sha256: str | None = None


def missing_weights(spec: WeightSpec, looked: list[str]) -> MissingWeightsError:
    """The error for ``spec``'s file not found: says how to get it and lists every place looked."""
    where = "; ".join(looked) if looked else f"nowhere (no explicit path, no --weights-dir, {ENV_VAR} unset)"
    return MissingWeightsError(
        spec, looked,
        f"weights for {spec.name!r} not found: get {spec.filename!r} from {spec.source} (licence: {spec.licence}) "
        f"and give its path in the pipeline config params, put it in the --weights-dir folder or in the "
        f"${ENV_VAR} folder. "
        f"Looked in: {where}")


class WeightsFormatError(VitonprepError, ValueError):
    """A weight file cannot be read as what its back-end needs: not a plain state dict, or one that would need
    arbitrary pickled objects (refused: weight files are untrusted and must not run code). Names the file."""


class UnsafeWeightsError(WeightsFormatError, pickle.UnpicklingError):
    """The file needs pickled objects beyond tensors and plain containers: refused (still an UnpicklingError, as
    torch's own refusal is)."""


def read_torch_weights(path: str | Path) -> Any:
    """The one reader of the reference back-ends' torch weight files: ``torch.load(weights_only=True)`` on CPU, so
    a file holds tensors and plain containers or is refused. Every failure is a :class:`WeightsFormatError` naming
    the file (torch's own messages rarely do)."""
    import torch  # heavy; the doctor and the lookups of this module run without it

    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        reason = next((ln for ln in lines if "GLOBAL" in ln or "Unsupported" in ln), lines[0] if lines else "")
        raise UnsafeWeightsError(f"{path}: refusing to load — the file needs pickled objects beyond tensors and "
                                 f"plain containers ({reason}); weight files are read with "
                                 f"torch.load(weights_only=True) only, so they cannot run code") from exc
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise WeightsFormatError(f"{path}: not a readable torch weight file ({type(exc).__name__}: {first})") from exc


WEIGHTS: dict[str, WeightSpec] = {}


def register_weights(spec: WeightSpec) -> WeightSpec:
    """Add `spec` to the registry `vitonprep doctor` lists; registering the same name twice must agree."""
    old = WEIGHTS.get(spec.name)
    if old is not None and old != spec:
        raise ValueError(f"weights {spec.name!r} registered twice with different specs: {old} vs {spec}")
    WEIGHTS[spec.name] = spec
    return spec


#: while `diagnose` builds a back-end, every lookup is also recorded here (spec, path or None)
_LOOKUPS: contextvars.ContextVar[list | None] = contextvars.ContextVar("vitonprep_weight_lookups", default=None)


def find_weights(spec: WeightSpec, explicit: str | Path | None = None,
                 weights_dir: str | Path | None = None) -> Path:
    """The path of `spec`'s file: `explicit` (a file, or a folder holding it), then `weights_dir`, then
    $VITONPREP_WEIGHTS_DIR. An explicit path that does not exist is an error, not a reason to look elsewhere."""
    record = _LOOKUPS.get()
    try:
        path = _find(spec, explicit, weights_dir)
    except MissingWeightsError:
        if record is not None:
            record.append((spec, None))
        raise
    if record is not None:
        record.append((spec, path))
    return path


def _find(spec: WeightSpec, explicit: str | Path | None, weights_dir: str | Path | None) -> Path:
    looked: list[str] = []
    candidates: list[tuple[str, Path]] = []
    if explicit is not None and str(explicit) != "":
        p = Path(explicit).expanduser()
        candidates.append(("explicit path in the pipeline config params", p / spec.filename if p.is_dir() else p))
    if weights_dir is not None and str(weights_dir) != "":
        candidates.append(("--weights-dir", Path(weights_dir).expanduser() / spec.filename))
    env = os.environ.get(ENV_VAR)
    if env:
        candidates.append((f"${ENV_VAR}", Path(env).expanduser() / spec.filename))
    for label, path in candidates:
        if path.is_file():
            logger.debug("weights %s: %s (from %s)", spec.name, path, label)
            return path
        looked.append(f"{path} ({label})")
        if label == "explicit path in the pipeline config params":
            # an explicit path that does not exist is a mistake in the config: do not fall through silently
            raise missing_weights(spec, looked)
    raise missing_weights(spec, looked)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------- doctor (library twin of `vitonprep doctor`)

#: packages whose versions the doctor reports (distribution names)
PACKAGES = ("vitonprep", "torch", "torchvision", "numpy", "opencv-contrib-python", "opencv-python", "mediapipe",
            "scipy", "segment-anything", "onnxruntime", "detectron2", "densepose")

@dataclass
class WeightFile:
    spec: WeightSpec
    path: Path | None  # None: not found
    size: int | None = None
    sha256: str | None = None
    sha256_ok: bool | None = None  # None: no reference hash, or not hashed


@dataclass
class BackendStatus:
    kind: str
    name: str
    usable: bool
    approximate: bool
    problem: str = ""
    weights: list[WeightFile] = field(default_factory=list)
    licence: str = ""


@dataclass
class DoctorReport:
    backends: list[BackendStatus]
    weights: list[WeightFile]
    packages: dict[str, str | None]
    weights_dir: str | None
    env_dir: str | None


def _weight_file(spec: WeightSpec, path: Path | None, hash_files: bool, cache: dict) -> WeightFile:
    if path is None:
        return WeightFile(spec, None)
    key = str(path)
    if key not in cache:
        digest = sha256_file(path) if hash_files else None
        cache[key] = (path.stat().st_size, digest)
    size, digest = cache[key]
    ok = None if digest is None or spec.sha256 is None else digest.lower() == spec.sha256.lower()
    return WeightFile(spec, path, size, digest, ok)


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def diagnose(weights_dir: str | Path | None = None, hash_files: bool = True,
             selected: dict[str, Any] | None = None) -> DoctorReport:
    """Build every registered back-end with its default parameters (no model is loaded) and report what it needs.

    ``selected``: stage kind -> `BackendChoice` of a pipeline; that back-end is built with the pipeline's params
    (explicit weight paths included) instead of the defaults.

    A back-end is usable when it can be constructed: its weight files are found (params, ``weights_dir``,
    $VITONPREP_WEIGHTS_DIR) and its packages import. Every registered weight file is looked up as well.
    """
    cache: dict = {}
    statuses = []
    for kind, backends in BACKENDS.items():
        if kind == "caption":  # caption back-ends read user files named in params, not weight files
            continue
        for name in backends:
            lookups: list = []
            approximate, licence = False, ""
            token = _LOOKUPS.set(lookups)
            problem = ""
            try:
                choice = (selected or {}).get(kind)
                if choice is None or choice.backend != name:
                    choice = BackendChoice(name, {})
                cls = backend_class(kind, name)
                approximate, licence = cls.APPROXIMATE, cls.LICENCE
                make_backend(kind, choice, weights_dir).close()
            except (ConfigError, ImportError, OSError, ValueError, RuntimeError) as exc:
                problem = str(exc)
            finally:
                _LOOKUPS.reset(token)
            files = [_weight_file(spec, path, hash_files, cache) for spec, path in lookups]
            licences = sorted({f.spec.licence for f in files})
            licence = "; ".join(licences) if licences else licence
            statuses.append(BackendStatus(kind, name, not problem, approximate, problem, files, licence))
    all_files = []
    for spec in WEIGHTS.values():
        try:
            path: Path | None = find_weights(spec, None, weights_dir)
        except MissingWeightsError:
            path = None
        all_files.append(_weight_file(spec, path, hash_files, cache))
    return DoctorReport(statuses, all_files, package_versions(), str(weights_dir) if weights_dir else None,
                        os.environ.get(ENV_VAR))
