"""StableVITON networks with the official (ldm / ControlNet-style) state-dict layout."""

from vitontrain.models.atv import attention_tv_loss
from vitontrain.models.instantiate import ConfigError, build_model, instantiate_from_config
from vitontrain.models.stableviton import LossOutput, ModelInputs, StableVITONModel

__all__ = [
    "ConfigError",
    "LossOutput",
    "ModelInputs",
    "StableVITONModel",
    "attention_tv_loss",
    "build_model",
    "instantiate_from_config",
]
