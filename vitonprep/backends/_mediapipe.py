"""Lifecycle shared by the mediapipe back-ends: graphs built lazily in ``setup()``, released by ``close()``,
and never pickled (a back-end object travels to worker processes as its config only). What mediapipe's C++
layer prints while a graph is built and first run is captured (`vitonprep.backends.native_logs`)."""

from __future__ import annotations

import importlib
import logging
import sys
import types
from contextlib import contextmanager
from typing import Any, Iterator

from vitonprep.backends.native_logs import native_logs_captured

logger = logging.getLogger(__name__)


class _Deferred(types.ModuleType):
    """Stands in for a module (``matplotlib``, ``matplotlib.pyplot``) while mediapipe is imported; the first
    attribute looked up on it imports the real module. mediapipe 0.10.21 imports pyplot at package import only for
    ``drawing_utils.plot_landmarks``, which we never call, and matplotlib was about 0.75 s of the ~1.05 s of
    ``import mediapipe`` in every worker (pyplot alone ~0.55 s, the package ~0.2 s)."""

    def __getattr__(self, name: str) -> Any:
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), name)


_DEFERRED = ("matplotlib", "matplotlib.pyplot")


def import_mediapipe():
    """``import mediapipe`` without importing matplotlib (see :class:`_Deferred`)."""
    if "mediapipe" in sys.modules or any(name in sys.modules for name in _DEFERRED):
        import mediapipe

        return mediapipe
    stubs = {name: _Deferred(name) for name in _DEFERRED}
    # ``import matplotlib.pyplot as plt`` binds the package's attribute; set here so it is not looked up
    stubs["matplotlib"].__dict__["pyplot"] = stubs["matplotlib.pyplot"]
    sys.modules.update(stubs)
    try:
        import mediapipe
    finally:
        for name, stub in stubs.items():
            if sys.modules.get(name) is stub:  # later imports get the real modules
                del sys.modules[name]
    return mediapipe


@contextmanager
def one_thread_graphs() -> Iterator[None]:
    """mediapipe solutions built inside this block run their calculators on one thread.

    A legacy solution's graph gets a default executor with one thread per core. In a build worker, whose
    parallelism comes from ``-j``, those threads only hand the work to each other: with two workers on two cores
    each hand-over waits for a core, and the model calls took ~15 % longer (wall 4.5-4.8 s against 3.3-4.1 s for
    the same 36 pose + person calls per process, outputs identical); alone, the two set-ups were equally fast.
    On a 32-core machine it also means 32 threads per graph per worker. The solution classes build their graph in
    ``SolutionBase.__init__`` with no say in its executor, so the graph class it calls is swapped for this block.
    """
    from mediapipe.python import solution_base

    real = solution_base.calculator_graph

    def calculator_graph(graph_config):
        del graph_config.executor[:]  # the default executor, declared without options
        graph_config.num_threads = 1
        return real.CalculatorGraph(graph_config=graph_config)

    proxy = types.ModuleType(real.__name__)
    proxy.__dict__.update(real.__dict__)
    proxy.CalculatorGraph = calculator_graph
    solution_base.calculator_graph = proxy
    try:
        yield
    finally:
        solution_base.calculator_graph = real


class MediapipeGraphs:
    """Mixin: subclasses list their graph attributes in ``_GRAPHS`` and keep their config in ``self.config``."""

    _GRAPHS: tuple[str, ...] = ()
    _ran: frozenset[str] = frozenset()  # graphs that have run once (their first call's native lines captured)

    @contextmanager
    def _graphs_built(self) -> Iterator[None]:
        """The block in which ``setup()`` builds its solutions: one calculator thread each
        (:func:`one_thread_graphs`), opened before the block ends and their native log lines captured.

        A solution opens its calculators (and loads its models, which is when TensorFlow Lite and the inference
        calculators log) on its graph's thread after its constructor returns; waiting for the graph to be idle
        keeps those lines inside the capture."""
        with native_logs_captured(type(self).__name__), one_thread_graphs():
            yield
            for attr in self._GRAPHS:
                solution = getattr(self, attr, None)
                if solution is not None:
                    solution._graph.wait_until_idle()  # mediapipe 0.10.21's SolutionBase keeps its graph there

    def _process(self, attr: str, image: Any) -> Any:
        """``solution.process(image)`` of the solution in ``attr``; its first call's native log lines (a calculator
        that warns once about its inputs) are captured."""
        solution = getattr(self, attr)
        if attr in self._ran:
            return solution.process(image)
        with native_logs_captured(type(self).__name__):
            result = solution.process(image)
        self._ran = self._ran | {attr}
        return result

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
        self._ran = frozenset()  # graphs built again log again

    def __enter__(self):
        return self.setup()

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self) -> dict:
        return {"config": self.config}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["config"])
