"""The ``device`` setting of the reference back-ends (DensePose R-CNN, SCHP, OpenPose, SAM).

``auto`` means CUDA when torch sees a GPU, else the CPU. It is resolved in ``setup()``, i.e. in the process that
runs the model: a Ray stage actor with ``num_gpus: 1`` sees the GPU Ray gave it, a CPU shard worker sees none.
``meta`` is accepted for shape-only checks (tests). Importing this module does not import torch.
"""

from __future__ import annotations

import logging
import re
from typing import Any, ClassVar

from vitonprep.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["ModelOnDevice", "check_device", "device_note", "onnx_providers", "resolve_device"]

_DEVICE = re.compile(r"(auto|cpu|meta|cuda(:\d+)?)")


def check_device(setting: str) -> str:
    """The setting itself, or TypeError (the registry reports it as a ``params`` error) for anything else."""
    if not isinstance(setting, str) or not _DEVICE.fullmatch(setting):
        raise TypeError(f"device must be auto, cpu, cuda or cuda:N, got {setting!r}")
    return setting


def resolve_device(setting: str) -> Any:
    """The torch.device to compute on; ConfigError when CUDA is asked for and torch sees none."""
    import torch

    check_device(setting)
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(setting)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {setting!r}: torch sees no CUDA device here (use device: auto or cpu)")
    return device


def device_note(device: Any) -> str:
    """What meta.json's producer note adds: nothing on the CPU (so CPU outputs stay as they were)."""
    return "" if device is None or str(device) == "cpu" else f"computed on {device}"


class ModelOnDevice:
    """For back-ends that load a model in ``setup()`` onto the device resolved there: ``device`` (None until then),
    the producer note's device part, and pickling without the model (each worker process loads its own copy)."""

    #: the attribute that holds the loaded model
    MODEL_ATTR: ClassVar[str] = "_model"
    device: Any = None

    @property
    def device_note(self) -> str:
        return device_note(self.device)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state[self.MODEL_ATTR] = None
        return state


def onnx_providers(setting: str) -> list[Any]:
    """onnxruntime providers: CUDA first when the setting resolves to CUDA and onnxruntime ships that provider."""
    import onnxruntime as ort

    check_device(setting)
    available = ort.get_available_providers()
    if setting == "auto":
        import torch

        wants_cuda = torch.cuda.is_available()
    else:
        wants_cuda = setting.startswith("cuda")
    if wants_cuda and "CUDAExecutionProvider" in available:
        device_id = int(setting.split(":")[1]) if ":" in setting else 0
        return [("CUDAExecutionProvider", {"device_id": device_id}), "CPUExecutionProvider"]
    if wants_cuda:
        logger.warning("device %s: this onnxruntime has no CUDAExecutionProvider (onnxruntime-gpu), running on the "
                       "CPU", setting)
    return ["CPUExecutionProvider"]
