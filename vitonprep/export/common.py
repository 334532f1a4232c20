"""Helpers shared by the export formats: reading samples back through the strict decoders, writing files once."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image

from vitonprep import codecs
from vitonprep.schema import FIELDS_BY_MEMBER
from vitonprep.shards import Sample, iter_tar_samples, list_shards

MASK_JPEG_QUALITY = 75  # cloth-mask in VITON-HD is an L JPEG at PIL's default quality


@dataclass
class ExportReport:
    nsamples: int = 0
    nfiles: int = 0
    pairs: dict[str, list[str]] = field(default_factory=dict)
    #: per-format notes (e.g. how many captions came from the shards vs. the tagger at export time)
    notes: dict[str, Any] = field(default_factory=dict)


def iter_samples(shard_dir: Path) -> Iterator[tuple[Sample, dict[str, Any]]]:
    """Every sample of every shard with its decoded meta.json."""
    for tar_path in list_shards(shard_dir):
        for sample in iter_tar_samples(tar_path):
            yield sample, codecs.decode_json(sample.members["meta.json"], f"{sample.key}.meta.json")


def decoded(sample: Sample, name: str) -> Any:
    """Decode member ``name`` (field name, e.g. ``agn_mask``) with the shard contract's strict decoder; None if
    the sample does not have it."""
    for member, f in FIELDS_BY_MEMBER.items():
        if f.name == name:
            data = sample.members.get(member)
            return None if data is None else codecs.decode_field(f, data, sample.key)
    raise KeyError(name)


def _mask_jpeg(mask_png: bytes) -> bytes:
    mask = codecs.decode_mask(mask_png)
    buf = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8) * 255, "L").save(buf, format="JPEG", quality=MASK_JPEG_QUALITY)
    return buf.getvalue()


def png_bytes(arr: np.ndarray, mode: str, palette: list[int] | None = None) -> bytes:
    img = Image.fromarray(arr, mode)
    if palette is not None:
        img.putpalette(palette)
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=codecs.PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def jpeg_bytes(rgb: np.ndarray, quality: int = 95) -> bytes:
    return codecs.encode_jpeg(np.ascontiguousarray(rgb), quality)


def json_bytes(obj: Any) -> bytes:
    return json.dumps(obj).encode("utf-8")


def _write_once(path: Path, data: bytes) -> bool:
    """Person maps repeat across unpaired samples: write each file once, refuse conflicting content."""
    if path.exists():
        if path.read_bytes() != data:
            raise ValueError(f"{path} already exists with different content (two samples disagree on it)")
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_bytes(data)
    tmp.replace(path)
    return True


def _write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in sorted(set(lines))))
