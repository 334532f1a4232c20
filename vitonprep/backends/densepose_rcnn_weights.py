"""Reading detectron2 ``.pkl`` weight files (``model_final_162be9.pkl``) without running arbitrary pickle code.

detectron2 model-zoo files are pickles of ``{"model": {name: numpy.ndarray}, "__author__": ...}``. A plain
``pickle.load`` would execute any callable the file names, so the unpickler here resolves only what numpy array
reconstruction needs (``numpy.core.multiarray._reconstruct`` or ``numeric._frombuffer``, ``ndarray``, ``dtype``,
numpy scalars) and refuses everything else, naming the offending global.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

# raised for a file that is not a detectron2 numpy pickle for this model (bad global, missing or misshapen key): the
# error class of every reference back-end's weight file
from vitonprep.weights import WeightsFormatError

logger = logging.getLogger(__name__)

__all__ = ["WeightsFormatError", "read_detectron2_pkl", "write_detectron2_pkl", "expected_shapes",
           "state_dict_from_pkl"]

#: the only globals a numpy-array pickle needs (numpy 1 and numpy 2 module paths)
_ALLOWED_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),  # arrays pickled with protocol 5
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("collections", "OrderedDict"),
})


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise WeightsFormatError(f"refusing to unpickle {module}.{name}: a detectron2 weight file holds only "
                                     "numpy arrays")
        if module.startswith("numpy._core") and not hasattr(np, "_core"):
            module = module.replace("numpy._core", "numpy.core")  # a numpy-2 pickle read under numpy 1
        return super().find_class(module, name)


def read_detectron2_pkl(path: str | Path) -> dict[str, np.ndarray]:
    """The ``model`` dict of a detectron2 ``.pkl`` file, read with the numpy-only unpickler."""
    path = Path(path)
    with open(path, "rb") as f:
        try:
            # latin1: the model zoo's older files were pickled by Python 2 (detectron2's own loader does the same)
            data = _NumpyOnlyUnpickler(f, encoding="latin1").load()
        except WeightsFormatError as exc:
            raise WeightsFormatError(f"{path}: {exc}") from None
        except (pickle.UnpicklingError, EOFError, AttributeError, ValueError, TypeError) as exc:
            raise WeightsFormatError(f"{path}: not a readable detectron2 .pkl weight file ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        kind = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise WeightsFormatError(f"{path}: expected a dict with a 'model' dict of arrays (detectron2 model zoo "
                                 f"format), found {kind}")
    model = data["model"]
    bad = [k for k, v in model.items() if not isinstance(v, np.ndarray)]
    if bad:
        raise WeightsFormatError(f"{path}: entries that are not numpy arrays: {bad[:5]}")
    logger.debug("read %d arrays from %s (author %r)", len(model), path, data.get("__author__"))
    return model


def write_detectron2_pkl(state: dict[str, np.ndarray], path: str | Path, author: str = "vitonprep") -> None:
    """Write arrays in the model-zoo layout (used by tests to make synthetic files with the official keys)."""
    with open(path, "wb") as f:
        pickle.dump({"model": dict(state), "__author__": author}, f, protocol=pickle.HIGHEST_PROTOCOL)


def expected_shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def state_dict_from_pkl(path: str | Path, shapes: dict[str, tuple[int, ...]],
                        dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Tensors for every key of ``shapes``; a missing or misshapen key raises, naming it; extra keys are logged."""
    arrays = read_detectron2_pkl(path)
    missing = [k for k in shapes if k not in arrays]
    if missing:
        raise WeightsFormatError(f"{path}: {len(missing)} weight(s) missing, e.g. {missing[:5]}")
    wrong = [(k, tuple(arrays[k].shape), s) for k, s in shapes.items() if tuple(arrays[k].shape) != s]
    if wrong:
        k, got, want = wrong[0]
        raise WeightsFormatError(f"{path}: weight {k!r} has shape {got}, expected {want}"
                                 + (f" ({len(wrong) - 1} more misshapen)" if len(wrong) > 1 else ""))
    extra = sorted(set(arrays) - set(shapes))
    if extra:
        logger.warning("%s: %d arrays not used by this model, e.g. %s", path, len(extra), extra[:5])
    return {k: torch.from_numpy(np.ascontiguousarray(arrays[k])).to(dtype) for k in shapes}

