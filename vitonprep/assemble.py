"""Turn decoded maps into one encoded sample that honours the shard contract.

Every convert/build path ends here, so field encodings and producer records are made in one place; meta.json
is built by `vitonprep.sample_meta` (`SampleBuilder.finish_meta`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from vitonprep import codecs
from vitonprep.sample_meta import SampleIdentity, meta_record
from vitonprep.schema import FIELDS_BY_NAME, Field, Kind
from vitonprep.shards import Sample


@dataclass(frozen=True)
class Producer:
    """Who made a field: a back-end name, whether it is an approximation, and a short note."""

    backend: str
    approximate: bool = False
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "approximate": self.approximate, "note": self.note}


@dataclass
class SampleBuilder:
    """Collects encoded fields and their producers, then emits a `Sample` with ``meta.json``."""

    key: str
    members: dict[str, bytes] = field(default_factory=dict)
    producers: dict[str, dict[str, Any]] = field(default_factory=dict)

    def put(self, name: str, data: bytes, producer: Producer) -> None:
        f = FIELDS_BY_NAME[name]
        self.members[f.member] = data
        self.producers[name] = producer.to_dict()

    def put_array(self, name: str, value: Any, producer: Producer) -> None:
        self.put(name, encode_value(FIELDS_BY_NAME[name], value), producer)

    def finish_meta(self, identity: SampleIdentity, *, made_by: dict[str, Any] | None = None,
                    source: dict[str, Any], statuses: dict[str, Any] | None = None) -> Sample:
        """The sample with its meta.json built by `vitonprep.sample_meta.meta_record`."""
        return self._with_meta(meta_record(self.key, self.producers, identity, made_by=made_by, source=source,
                                           statuses=statuses))

    def _with_meta(self, full: dict[str, Any]) -> Sample:
        members = dict(self.members)
        members[FIELDS_BY_NAME["meta"].member] = codecs.encode_json(full)
        return Sample(self.key, members)


def encode_value(f: Field, value: Any) -> bytes:
    if f.kind is Kind.RGB:
        if f.ext == "jpg":
            return codecs.encode_jpeg(value, codecs.JPEG_QUALITY.get(f.name, 95))
        return codecs.encode_png_rgb(value)
    if f.kind is Kind.MASK:
        return codecs.encode_mask_png(value)
    if f.kind is Kind.LABELS:
        return codecs.encode_labels_png(value)
    return codecs.encode_json(value)


def jpeg_passthrough(data: bytes, size: tuple[int, int]) -> bytes | None:
    """Return ``data`` unchanged if it is already an RGB JPEG of ``size`` (no generational loss), else None."""
    try:
        img = Image.open(io.BytesIO(data))
    except Exception:
        return None
    if img.format == "JPEG" and img.mode == "RGB" and img.size == size:
        return data
    return None


def read_rgb(data: bytes, what: str) -> np.ndarray:
    """Decode any photo to RGB uint8 (EXIF orientation applied); raise DecodeError naming ``what``."""
    try:
        img = Image.open(io.BytesIO(data))
        img = ImageOps.exif_transpose(img)
        img.load()
    except Exception as exc:
        raise codecs.DecodeError(f"{what}: cannot decode image ({type(exc).__name__}: {exc})") from exc
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def read_mask_any(data: bytes, what: str, threshold: int = 128) -> np.ndarray:
    """Read a mask stored in any mode (JPEG with noise, L/RGB PNG) and threshold at ``threshold``, as loaders do."""
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except Exception as exc:
        raise codecs.DecodeError(f"{what}: cannot decode mask ({type(exc).__name__}: {exc})") from exc
    return np.asarray(img.convert("L"), dtype=np.uint8) >= threshold
