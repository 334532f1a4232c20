"""The stage interface and the typed per-sample context every stage reads and writes.

A stage declares ``reads``/``writes`` (names of `SampleContext` fields); `Pipeline.check` verifies before any image
is touched that each read is written upstream. A stage does no shard I/O, no multiprocessing and no printing. A
sample whose input cannot give a result ends as `SampleError(stage, reason, source)`: stages turn the back-ends'
`InputError` into it and catch nothing else (any other exception is a bug and fails the run).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np

from vitonprep.assemble import Producer
from vitonprep.backends.protocols import Backend
from vitonprep.backends.registry import producer_of
from vitonprep.backends.results import PersonCheck, PoseResult
from vitonprep.errors import InputError, SampleError
from vitonprep.photos import Fit
from vitonprep.quality.report import QualityReport
from vitonprep.raw import RawItem
from vitonprep.shards import Sample

__all__ = ["SampleContext", "Stage", "BackendStage", "INPUT_KEYS", "CONTEXT_FIELDS"]


@dataclass(eq=False)
class SampleContext:
    """One sample on its way through the pipeline. ``None`` = not made (yet, or not for this sample)."""

    item: RawItem
    # load
    image: np.ndarray | None = None
    fit: Fit | None = None
    image_jpeg: bytes | None = None  # the file's bytes when they can be stored as they are
    cloth: np.ndarray | None = None
    cloth_fit: Fit | None = None
    cloth_jpeg: bytes | None = None
    # model stages
    pose: PoseResult | None = None
    person_check: PersonCheck | None = None
    parse: np.ndarray | None = None
    image_densepose: np.ndarray | None = None
    cloth_mask: np.ndarray | None = None
    # derived maps
    agn: np.ndarray | None = None
    agn_mask: np.ndarray | None = None
    parse_agn: np.ndarray | None = None
    gt_cloth_warped_mask: np.ndarray | None = None
    pose_render: np.ndarray | None = None
    # optional members, and why they are absent
    caption: dict[str, Any] | None = None
    caption_error: str | None = None
    cloth_pose: PoseResult | None = None
    cloth_pose_status: str | None = None
    # the shard sample (encoded members and meta.json) and the quality checks' verdict on exactly those bytes
    sample: Sample | None = None
    quality: QualityReport | None = None
    #: member name -> who made it (meta.json)
    producers: dict[str, Producer] = field(default_factory=dict)


#: field names a stage may read or write
CONTEXT_FIELDS = frozenset(f.name for f in fields(SampleContext)) - {"producers"}
#: what the raw input gives before any stage runs
INPUT_KEYS = ("item",)


class Stage:
    """``name``, ``reads``, ``writes``, lazy ``setup``, ``__call__(ctx)`` filling ``ctx``, and ``run_batch``."""

    name: str = ""
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()

    def __init__(self, name: str = "", reads: tuple[str, ...] = (), writes: tuple[str, ...] = ()):
        """Stages that set ``name``/``reads``/``writes`` on the class need not call this; wrappers (a stage run
        elsewhere, a loader of stored photos) pass them here."""
        if name:
            self.name, self.reads, self.writes = name, tuple(reads), tuple(writes)

    def setup(self) -> None:
        """Load models (called once per worker process, never at import)."""

    def close(self) -> None:
        """Free what ``setup`` loaded."""

    def __call__(self, ctx: SampleContext) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def run_batch(self, ctxs: list[SampleContext]) -> list[SampleContext | SampleError]:
        """The stage on several samples: each context filled in, or the SampleError its sample raised, in order."""
        out: list[SampleContext | SampleError] = []
        for ctx in ctxs:
            try:
                self(ctx)
                out.append(ctx)
            except SampleError as exc:
                out.append(exc)
        return out


class BackendStage(Stage):
    """A stage that calls one back-end per sample (or once per batch through its ``call_batch``).

    Subclasses say what the call takes (`inputs`) and what happens to its outcome (`finish`, called with the
    result or the back-end's `InputError`, by both paths alike so that batch and single runs store and fail the
    same way).
    """

    backend: Backend
    SOURCE: ClassVar[str] = "person"  # which photo a failure names (``item.person`` or ``item.cloth``)

    def setup(self) -> None:
        self.backend.setup()

    def close(self) -> None:
        self.backend.close()

    def inputs(self, ctx: SampleContext) -> tuple[Any, ...]:  # pragma: no cover - interface
        raise NotImplementedError

    def finish(self, ctx: SampleContext, outcome: Any) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def applies(self, ctx: SampleContext) -> bool:
        """False for samples the stage has nothing to do for (e.g. no garment photo); `skip` fills them."""
        return True

    def skip(self, ctx: SampleContext) -> None:
        """What a sample the stage does not apply to gets."""

    def __call__(self, ctx: SampleContext) -> None:
        if not self.applies(ctx):
            self.skip(ctx)
            return
        try:
            outcome = self.backend(*self.inputs(ctx))
        except InputError as exc:
            outcome = exc
        self.finish(ctx, outcome)

    def run_batch(self, ctxs: list[SampleContext]) -> list[SampleContext | SampleError]:
        """One ``call_batch`` for the samples the stage applies to; the others take the per-sample path."""
        todo = [c for c in ctxs if self.applies(c)]
        for ctx in ctxs:
            if not self.applies(ctx):
                self.skip(ctx)
        columns = [list(col) for col in zip(*[self.inputs(c) for c in todo], strict=True)]
        outcomes = self.backend.call_batch(*columns) if todo else []
        done = {id(c): o for c, o in zip(todo, outcomes, strict=True)}
        out: list[SampleContext | SampleError] = []
        for ctx in ctxs:
            try:
                if id(ctx) in done:
                    self.finish(ctx, done[id(ctx)])
                out.append(ctx)
            except SampleError as exc:
                out.append(exc)
        return out

    def fail_if_error(self, ctx: SampleContext, outcome: Any, prefix: str = "") -> None:
        """SampleError for an InputError outcome (naming the sample's photo); anything else passes."""
        if isinstance(outcome, InputError):
            source = ctx.item.cloth if self.SOURCE == "cloth" else ctx.item.person
            raise SampleError(self.name, f"{prefix}{outcome}", source or "") from outcome

    @property
    def producer(self) -> Producer:
        """The producer record of what this stage's back-end makes (with its device, once set up)."""
        return producer_of(self.backend)
