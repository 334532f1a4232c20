"""Lifecycle shared by the mediapipe back-ends: graphs built lazily in ``setup()``, released by ``close()``,
and never pickled (a back-end object travels to worker processes as its config only)."""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


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
