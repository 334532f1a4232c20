"""What a model back-end is: one small protocol per kind, and `Backend`, the base class that gives the defaults.

A back-end is a class. What the pipeline needs to know about it is written on the class, never restated in a
table: ``NAME`` (the registry name used in pipeline YAML), ``KIND``, ``APPROXIMATE`` (its output is an
approximation of what the official model would give: recorded in ``meta.json`` and propagated to every map
derived from it), ``LICENCE`` (of its model or code; weight files carry their own licence in their
`WeightSpec`), ``WEIGHT_FILES`` (file names it may read, for documentation and ``vitonprep doctor``) and
``Config`` (the frozen dataclass of its pipeline ``params``).

Every back-end is built the same way, ``cls(config, weights_dir)``: the constructor validates and looks its
weight files up (a missing file raises `MissingWeightsError` there, before any image is touched) but loads
nothing; ``setup()`` loads models in the process that computes, ``close()`` frees them. The per-sample call is
``__call__``; ``call_batch`` takes one list per argument and returns, per sample, the result or the `InputError`
that sample raised (a GPU back-end runs its model once for the batch; the default loops). A back-end raises
`InputError` (`NoPersonError`, ...) for an input that gives no result; any other exception is a bug.

Adding a back-end (e.g. a human parser):

1. Write one module ``vitonprep/backends/<kind>_<name>.py`` with a class deriving from `Backend` that sets
   ``NAME``, ``KIND``, ``APPROXIMATE``, ``LICENCE``, ``WEIGHT_FILES`` and ``Config``, and implements the call of
   its kind's protocol below (and ``call_batch`` when the model batches).
2. Weight files: declare a `WeightSpec` with `register_weights` and look it up with `find_weights` in
   ``__init__``; load it in ``setup()`` with `read_torch_weights` (never ``torch.load`` on its own; weights are
   untrusted). Heavy libraries (torch, onnxruntime) are imported inside ``setup()``.
3. Add one line ``"<name>": "vitonprep.backends.<module>:<Class>"`` to `vitonprep.backends.registry.BACKENDS`.
4. Tests: the back-end on the bundled photos (or, without weights, its architecture at random init plus a parity
   fixture), its ``call_batch`` equal to its single calls, and a pipeline YAML that names it loading
   (``tests/test_configs.py``). ``docs/architecture.md`` describes where each kind sits in the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from vitonprep.errors import InputError

if TYPE_CHECKING:  # types only: the result classes live with the back-ends that make them
    from vitonprep.backends.results import PersonCheck, PoseResult
    from vitonprep.captions import GarmentTags
    from vitonprep.photos import Fit

__all__ = ["KINDS", "Backend", "NoParams", "PhotoRect", "PoseBackend", "PersonBackend", "ParsingBackend",
           "DensePoseBackend", "ClothMaskBackend", "CaptionBackend", "QualityBackend", "Outcome", "PROTOCOLS"]

#: the back-end kinds, in pipeline order (``stages.<kind>`` in a pipeline YAML)
KINDS = ("pose", "person", "parsing", "densepose", "cloth_mask", "caption", "quality")

#: one entry of a ``call_batch`` answer: the sample's result, or the InputError it raised
Outcome = Any


@dataclass(frozen=True)
class NoParams:
    """``Config`` of a back-end that takes no parameters (any key in ``params`` is an error)."""


@dataclass(frozen=True)
class PhotoRect:
    """The canvas pixels the photo covers, ``[x0, x1) x [y0, y1)``. The rest is the flat pad that ``fit: pad``
    adds to a photo wider or narrower than the canvas: it shows nothing of the person, so a back-end that takes
    the rectangle treats it as out of frame (a head cut by the photo's top is cut at ``y0``, not at the canvas
    top). A photo that fills the canvas (its aspect, or ``fit: crop``) covers all of it."""

    x0: int
    y0: int
    x1: int
    y1: int

    @classmethod
    def whole(cls, width: int, height: int) -> PhotoRect:
        return cls(0, 0, int(width), int(height))

    @classmethod
    def of_fit(cls, fit: Fit | None, width: int, height: int) -> PhotoRect:
        """The rectangle `vitonprep.photos.fit_to_canvas` pasted the photo into (same rounding); no fit (a
        canvas read back from a shard) = the whole canvas."""
        if fit is None:
            return cls.whole(width, height)
        iw, ih = fit.original_size
        nw, nh = max(1, round(iw * fit.scale)), max(1, round(ih * fit.scale))
        ox, oy = int(fit.offset[0]), int(fit.offset[1])
        # clamped so that x0 <= x1 and y0 <= y1 on the canvas whatever the fit says (a rebuild reads it from data)
        x0, y0 = min(max(0, ox), int(width)), min(max(0, oy), int(height))
        return cls(x0, y0, max(x0, min(int(width), ox + nw)), max(y0, min(int(height), oy + nh)))

    def is_whole(self, width: int, height: int) -> bool:
        return self == PhotoRect.whole(width, height)

    def contains(self, xy: np.ndarray) -> np.ndarray:
        """Per point of ``xy`` (..., 2) in canvas pixels: inside the photo (NaN is outside)."""
        x, y = xy[..., 0], xy[..., 1]
        return (x >= self.x0) & (x < self.x1) & (y >= self.y0) & (y < self.y1)

    def scaled(self, sx: float, sy: float, width: int, height: int) -> PhotoRect:
        """The rectangle on a resized canvas of ``width`` x ``height`` (``sx``, ``sy`` = new / old size)."""
        return PhotoRect(max(0, round(self.x0 * sx)), max(0, round(self.y0 * sy)),
                         min(width, round(self.x1 * sx)), min(height, round(self.y1 * sy)))

    def outside(self, a: np.ndarray) -> None:
        """Zero ``a`` (H x W ...) outside the rectangle, in place."""
        a[:self.y0] = 0
        a[self.y1:] = 0
        a[:, :self.x0] = 0
        a[:, self.x1:] = 0


class Backend:
    """Defaults shared by every back-end: metadata, the uniform constructor, no-op setup/close, the batch loop."""

    NAME: ClassVar[str]
    KIND: ClassVar[str]
    APPROXIMATE: ClassVar[bool] = False
    LICENCE: ClassVar[str] = ""
    WEIGHT_FILES: ClassVar[tuple[str, ...]] = ()
    Config: ClassVar[type] = NoParams
    #: the call takes the `PhotoRect` of the photo on the canvas as its last argument (pose and parsing
    #: back-ends that judge the frame's edges); the stage passes it only then
    PHOTO_RECT: ClassVar[bool] = False

    def __init__(self, config: Any = None, weights_dir: str | Path | None = None):
        self.config = self.Config() if config is None else config
        self.weights_dir = weights_dir

    @property
    def note(self) -> str:
        """Short text for the producer record in meta.json ("" = none)."""
        return ""

    @property
    def device_note(self) -> str:
        """What the producer note adds about the device ("" on the CPU, so CPU outputs stay as they were)."""
        return ""

    def setup(self) -> None:
        """Load models (once per worker process, never at import)."""

    def close(self) -> None:
        """Free what ``setup`` loaded."""

    def call_batch(self, *columns: list[Any]) -> list[Outcome]:
        """``self(*args)`` for each sample (``columns`` holds one list per argument of ``__call__``); an InputError
        is returned in its sample's place, anything else propagates. Back-ends whose model batches override it."""
        out: list[Outcome] = []
        for args in zip(*columns, strict=True):
            try:
                out.append(self(*args))
            except InputError as exc:
                out.append(exc)
        return out

    def __call__(self, *args: Any) -> Any:  # pragma: no cover - each kind defines its call
        raise NotImplementedError


# ---------------------------------------------------------------- one protocol per kind (what the stages call)


class _Common(Protocol):
    NAME: ClassVar[str]
    KIND: ClassVar[str]
    APPROXIMATE: ClassVar[bool]
    LICENCE: ClassVar[str]
    WEIGHT_FILES: ClassVar[tuple[str, ...]]
    Config: ClassVar[type]
    PHOTO_RECT: ClassVar[bool]

    @property
    def note(self) -> str: ...

    @property
    def device_note(self) -> str: ...

    def setup(self) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class PoseBackend(_Common, Protocol):
    """``pose``: the canvas RGB (HxWx3 uint8) -> `PoseResult` (OpenPose BODY_25 / face / hands in pixels; a person
    mask when the back-end segments). No person: `NoPersonError`. With ``PHOTO_RECT`` the call also takes the
    photo's `PhotoRect`: no joint and no person pixel outside it."""

    def __call__(self, rgb: np.ndarray, *rect: PhotoRect) -> PoseResult: ...

    def call_batch(self, rgbs: list[np.ndarray], *rects: list[PhotoRect]) -> list[Outcome]: ...


@runtime_checkable
class PersonBackend(_Common, Protocol):
    """``person``: framing checks of a photo that should show one person (count, size, cut-off sides; with
    ``PHOTO_RECT`` the sides are those of the photo's `PhotoRect`)."""

    def __call__(self, rgb: np.ndarray, pose: PoseResult | None, *rect: PhotoRect) -> PersonCheck: ...

    def call_batch(self, rgbs: list[np.ndarray], poses: list[PoseResult | None], *rects: list[PhotoRect]
                   ) -> list[Outcome]: ...


@runtime_checkable
class ParsingBackend(_Common, Protocol):
    """``parsing``: RGB + its pose + the garment category -> HxW uint8 CIHP labels 0..19 (with ``PHOTO_RECT``,
    the photo's `PhotoRect` last: background outside it, whatever the back-end; the stage ensures it for all)."""

    def __call__(self, rgb: np.ndarray, pose: PoseResult, category: str, *rect: PhotoRect) -> np.ndarray: ...

    def call_batch(self, rgbs: list[np.ndarray], poses: list[PoseResult], categories: list[str],
                   *rects: list[PhotoRect]) -> list[Outcome]: ...


@runtime_checkable
class DensePoseBackend(_Common, Protocol):
    """``densepose``: HxW uint8 DensePose part index map (0 background, 1..24).

    ``READS`` names the sample fields the call takes, in order: ``("image",)`` for a model on the photo (the
    canvas RGB), ``("parse", "pose")`` for the approximation from the CIHP parse and the `PoseResult`. The stage
    declares the same reads, so `Pipeline.check` sees them.
    """

    READS: ClassVar[tuple[str, ...]]

    def __call__(self, *inputs: Any) -> np.ndarray: ...

    def call_batch(self, *columns: list[Any]) -> list[Outcome]: ...


@runtime_checkable
class ClothMaskBackend(_Common, Protocol):
    """``cloth_mask``: garment photo RGB -> HxW bool silhouette. No garment: `InputError`."""

    def __call__(self, rgb: np.ndarray) -> np.ndarray: ...

    def call_batch(self, rgbs: list[np.ndarray]) -> list[Outcome]: ...


@runtime_checkable
class CaptionBackend(_Common, Protocol):
    """``caption``: garment tags. ``parse`` is the person's parse only when the person wears the garment (paired
    samples), else None. Cannot tag: `InputError` (recorded in meta; the caption member is optional)."""

    def __call__(self, cloth_id: str, cloth_mask: np.ndarray | None, parse: np.ndarray | None, category: str,
                 cloth_rgb: np.ndarray | None) -> GarmentTags: ...

    def call_batch(self, *columns: list[Any]) -> list[Outcome]: ...


@runtime_checkable
class QualityBackend(_Common, Protocol):
    """``quality`` (the stage comes with issue 17; no back-end is registered yet): the person canvas RGB ->
    named scores in 0..1 (higher = better, e.g. ``{"sharpness": 0.8}``) that a policy thresholds."""

    def __call__(self, rgb: np.ndarray) -> dict[str, float]: ...

    def call_batch(self, rgbs: list[np.ndarray]) -> list[Outcome]: ...


#: kind -> its protocol (the registry checks a class against it)
PROTOCOLS: dict[str, type] = {"pose": PoseBackend, "person": PersonBackend, "parsing": ParsingBackend,
                              "densepose": DensePoseBackend, "cloth_mask": ClothMaskBackend,
                              "caption": CaptionBackend, "quality": QualityBackend}
