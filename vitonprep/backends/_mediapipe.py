"""Lifecycle shared by the mediapipe back-ends: graphs built lazily in ``setup()``, released by ``close()``,
and never pickled (a back-end object travels to worker processes as its config only)."""

from __future__ import annotations

import importlib
import logging
import sys
import types
from typing import Any

logger = logging.getLogger(__name__)


class _DeferredPyplot(types.ModuleType):
    """Stands in for ``matplotlib.pyplot`` while mediapipe is imported; the first attribute access imports the
    real module. mediapipe 0.10.21 imports pyplot at package import only for ``drawing_utils.plot_landmarks``,
    which we never call, and that import is about half of ``import mediapipe`` (~1 s of every worker's start)."""

    def __getattr__(self, name: str) -> Any:
        if sys.modules.get("matplotlib.pyplot") is self:
            del sys.modules["matplotlib.pyplot"]
        return getattr(importlib.import_module("matplotlib.pyplot"), name)


def import_mediapipe():
    """``import mediapipe`` without importing matplotlib.pyplot (see :class:`_DeferredPyplot`)."""
    if "mediapipe" in sys.modules or "matplotlib.pyplot" in sys.modules:
        import mediapipe

        return mediapipe
    stub = sys.modules["matplotlib.pyplot"] = _DeferredPyplot("matplotlib.pyplot")
    try:
        import mediapipe
    finally:
        if sys.modules.get("matplotlib.pyplot") is stub:  # later imports get the real pyplot
            del sys.modules["matplotlib.pyplot"]
    return mediapipe


class MediapipeGraphs:
    """Mixin: subclasses list their graph attributes in ``_GRAPHS`` and keep their config in ``self.config``."""

    _GRAPHS: tuple[str, ...] = ()

    def close(self) -> None:
        """Release the mediapipe graphs; a later call to setup() builds them again."""
        for attr in self._GRAPHS:
            obj = getattr(self, attr, None)
            if obj is not None:
                try:
                    obj.close()
                except Exception:  # pragma: no cover - closing twice / interpreter shutdown
                    logger.debug("closing %s failed", attr, exc_info=True)
                setattr(self, attr, None)

    def __enter__(self):
        return self.setup()

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self) -> dict:
        return {"config": self.config}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["config"])
