"""The load stage: the raw item's person (and garment) photo, read as untrusted files and fitted to the canvas."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vitonprep.config import PipelineConfig
from vitonprep.errors import PhotoError, SampleError
from vitonprep.photos import Fit, fit_to_canvas, jpeg_stored_as_is, load_photo
from vitonprep.stages.base import SampleContext, Stage

__all__ = ["LoadStage"]


class LoadStage(Stage):
    name, reads = "load", ("item",)
    writes = ("image", "fit", "cloth", "cloth_fit", "image_jpeg", "cloth_jpeg")

    def __init__(self, cfg: PipelineConfig):
        self.cfg = cfg

    def __call__(self, ctx: SampleContext) -> None:
        item = ctx.item
        ctx.image, ctx.fit, ctx.image_jpeg = self._load(item.person, "person")
        if item.cloth:
            ctx.cloth, ctx.cloth_fit, ctx.cloth_jpeg = self._load(item.cloth, "cloth")
        else:
            ctx.cloth = ctx.cloth_fit = ctx.cloth_jpeg = None

    def _load(self, path: str, what: str) -> tuple[np.ndarray, Fit, bytes | None]:
        """(canvas RGB, fit, the file's bytes when they can be stored as they are - else None)."""
        try:
            data = Path(path).read_bytes()
            rgb = load_photo(data, path, self.cfg.max_photo_pixels)
        except PhotoError as exc:
            raise SampleError(f"load_{what}", str(exc), path) from exc
        except OSError as exc:
            raise SampleError(f"load_{what}", f"cannot read: {exc}", path) from exc
        size = tuple(self.cfg.size)
        canvas, fit = fit_to_canvas(rgb, size, self.cfg.fit)
        return canvas, fit, (data if jpeg_stored_as_is(data, fit, size) else None)
