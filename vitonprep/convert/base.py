"""What every converter shares: the resolved config, a planned sample, and the pieces of a sample every dataset
builds the same way (garment and mask, meta.json fields, decoding a file into a per-sample failure)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from vitonprep import codecs
from vitonprep.assemble import Producer, SampleBuilder, jpeg_passthrough, read_mask_any, read_rgb
from vitonprep.backends import cloth_mask_opencv
from vitonprep.errors import ConfigError, SampleError
from vitonprep.sample_meta import SampleIdentity
from vitonprep.schema import PERSON_SIZE

DATASETS = ("vitonhd", "dresscode")


@dataclass(frozen=True)
class ConvertConfig:
    """Resolved once at the CLI; everything below it receives this object."""

    dataset: str  # "vitonhd" | "dresscode"
    source: Path
    out: Path
    samples_per_shard: int = 100
    workers: int = 1
    #: used when ``source`` is a single split folder (image/, cloth/, ... directly inside)
    default_split: str = "test"
    #: restrict to these DressCode categories (empty = all found)
    categories: tuple[str, ...] = ()
    #: DressCode mask recipe when agnostic masks are derived: "dc" (DressCode style) or "hd" (IDM-VTON style)
    name: str = ""

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ConfigError(f"unknown dataset {self.dataset!r}; choose one of {DATASETS}")
        if self.samples_per_shard < 1:
            raise ConfigError("samples_per_shard must be >= 1")
        if self.workers < 1:
            raise ConfigError("workers must be >= 1")


@dataclass
class PlannedSample:
    """Everything a worker needs to make one sample; plain data so it pickles to worker processes."""

    key: str
    split: str
    pair: str
    category: str
    person_id: str
    cloth_id: str
    files: dict[str, str]  # role -> absolute path
    root: str


def put_garment(b: SampleBuilder, item: PlannedSample, given: Producer, mask_producer: Producer) -> None:
    """Garment photo (passed through when it already is a 768x1024 RGB JPEG) and its mask: the folder's own
    mask thresholded at 128 (``mask_producer``), else the OpenCV back-end."""
    path = item.files["cloth"]
    data = Path(path).read_bytes()
    cloth = decode_or_fail(read_rgb, data, path, "cloth")
    if (cloth.shape[1], cloth.shape[0]) != PERSON_SIZE:
        raise SampleError("cloth", f"size {cloth.shape[1]}x{cloth.shape[0]}, expected "
                          f"{PERSON_SIZE[0]}x{PERSON_SIZE[1]}", path)
    b.put("cloth", jpeg_passthrough(data, PERSON_SIZE) or codecs.encode_jpeg(cloth), given)
    if "cloth_mask" in item.files:
        mpath = item.files["cloth_mask"]
        mask = read_mask_any(Path(mpath).read_bytes(), mpath)
        check_same_size(mask, cloth, mpath, "cloth_mask")
        b.put_array("cloth_mask", mask, mask_producer)
    else:
        try:
            mask = cloth_mask_opencv.cloth_mask(cloth)
        except ValueError as exc:
            raise SampleError("cloth_mask", str(exc), path) from exc
        b.put_array("cloth_mask", mask, Producer(cloth_mask_opencv.NAME, note="the source has no mask for it"))


def sample_identity(item: PlannedSample, image_shape: tuple[int, ...]) -> SampleIdentity:
    """The meta.json identity of a converted sample (`vitonprep.sample_meta` builds the record)."""
    root = Path(item.root)
    return SampleIdentity(
        person_file=str(Path(item.files["image"]).relative_to(root)),
        cloth_file=str(Path(item.files["cloth"]).relative_to(root)),
        person_id=item.person_id, cloth_id=item.cloth_id, pair=item.pair, split=item.split,
        category=item.category, size=PERSON_SIZE, original_size=(image_shape[1], image_shape[0]))


def decode_or_fail(fn: Callable[[bytes, str], Any], data: bytes, path: str, stage: str) -> Any:
    """Run decoder ``fn(data, path)``; any decoding problem becomes SampleError(stage) naming the file."""
    try:
        return fn(data, path)
    except codecs.DecodeError as exc:
        raise SampleError(stage, str(exc), path) from exc
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise SampleError(stage, f"cannot decode: {exc}", path) from exc


def check_same_size(arr: np.ndarray, image: np.ndarray, path: str, stage: str) -> None:
    if arr.shape[:2] != image.shape[:2]:
        raise SampleError(stage, f"size {arr.shape[1]}x{arr.shape[0]} differs from the person image "
                          f"{image.shape[1]}x{image.shape[0]}", path)
