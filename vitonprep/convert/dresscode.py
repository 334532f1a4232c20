"""DressCode folders -> shards.

Layout (aimagelab/dress-code README; docs/architecture.md, "Data contract"):
``{upper_body,lower_body,dresses}/images/XXXXXX_0.jpg`` (person) and ``XXXXXX_1.jpg`` (garment),
``keypoints/XXXXXX_2.json`` (18 OpenPose points, x/y in 384x512), ``label_maps/XXXXXX_4.png`` (SCHP-ATR ids),
``dense/XXXXXX_5.png`` (DensePose part indices), optional ``image-densepose/`` (IDM-VTON), ``masks/XXXXXX_1.png``
(LaDI-VTON garment masks) and pair lists per category.

DressCode's label maps are ATR, remapped here to CIHP (no neck label exists in ATR, so CIHP 10 never appears);
the agnostic mask is DressCode's own test-time recipe (`vitonprep.derive.masks_idm.dresscode_mask`). Every such
choice is recorded in ``meta.producers``.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vitonprep import codecs
from vitonprep.assemble import Producer, SampleBuilder, jpeg_passthrough, read_rgb
from vitonprep.convert.base import (
    ConvertConfig,
    PlannedSample,
    check_same_size,
    decode_or_fail,
    put_garment,
    sample_identity,
)
from vitonprep.derive import agnostic as agn_mod
from vitonprep.derive.body25 import OpenPoseKeypoints, coco18_to_body25
from vitonprep.derive.densepose import render_densepose
from vitonprep.derive.labels import atr_to_cihp
from vitonprep.derive.masks_idm import dresscode_mask
from vitonprep.derive.pose_render import render_pose
from vitonprep.errors import ConfigError, SampleError
from vitonprep.schema import CATEGORIES, PERSON_SIZE, sample_key
from vitonprep.shards import Failure, Sample

logger = logging.getLogger(__name__)

LAYOUT_HINT = "expected {upper_body,lower_body,dresses}/images/XXXXXX_0.jpg with keypoints/, label_maps/, dense/"
LICENCE = "DressCode: research and teaching only, no redistribution of altered copies (aimagelab/dress-code LICENCE)"

#: garment labels per category in CIHP ids (after ATR->CIHP), for gt_cloth_warped_mask
GARMENT_LABELS = {"upper_body": (5,), "lower_body": (9, 12), "dresses": (6,)}
PAIR_FILES = {("train", "paired"): "train_pairs.txt", ("test", "paired"): "test_pairs_paired.txt",
              ("test", "unpaired"): "test_pairs_unpaired.txt"}


def _read_pair_file(path: Path) -> list[tuple[str, str]]:
    out = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2:
            out.append((Path(parts[0]).stem, Path(parts[1]).stem))
    return out


def plan(cfg: ConvertConfig) -> tuple[list[PlannedSample | Failure], dict[str, Any]]:
    root = cfg.source
    cats = [c for c in CATEGORIES if (root / c / "images").is_dir()]
    unknown = [c for c in cfg.categories if c not in CATEGORIES]
    if unknown:
        raise ConfigError(f"unknown categories {unknown}; choose from {CATEGORIES}")
    if cfg.categories:
        cats = [c for c in cats if c in cfg.categories]
    planned: list[PlannedSample | Failure] = []
    for cat in cats:
        cdir = root / cat
        combos: set[tuple[str, str, str, str]] = set()  # split, pair, person stem, cloth stem
        for (split, _listed_pair), fname in PAIR_FILES.items():
            if (cdir / fname).is_file():
                for p, c in _read_pair_file(cdir / fname):
                    combos.add((split, "paired" if p.split("_")[0] == c.split("_")[0] else "unpaired", p, c))
        if not combos:  # no lists: every person with its own garment, in the default split
            for img in sorted((cdir / "images").glob("*_0.jpg")):
                c = img.stem[:-2] + "_1"
                if (cdir / "images" / f"{c}.jpg").is_file():
                    combos.add((cfg.default_split, "paired", img.stem, c))
        for split, pair, pstem, cstem in sorted(combos):
            base = pstem.rsplit("_", 1)[0]
            files = {
                "image": cdir / "images" / f"{pstem}.jpg",
                "cloth": cdir / "images" / f"{cstem}.jpg",
                "pose": cdir / "keypoints" / f"{base}_2.json",
                "label_map": cdir / "label_maps" / f"{base}_4.png",
                "dense": cdir / "dense" / f"{base}_5.png",
                "image_densepose": cdir / "image-densepose" / f"{pstem}.jpg",
                "cloth_mask": cdir / "masks" / f"{cstem}.png",
            }
            present = {k: str(v) for k, v in files.items() if v.is_file()}
            key = sample_key(pstem, cstem, pair)
            missing = [k for k in ("image", "cloth", "pose", "label_map") if k not in present]
            if "dense" not in present and "image_densepose" not in present:
                missing.append("dense")
            if missing:
                names = ", ".join(str(files[m].relative_to(root)) for m in missing)
                planned.append(Failure(str(files["image"]), "plan", f"sample {key}: missing {names}", key))
                continue
            planned.append(PlannedSample(key, split, pair, cat, pstem, cstem, present, str(root)))
    return planned, {"source_dataset": "dresscode", "categories": cats}


def read_dresscode_keypoints(data: bytes, path: str) -> np.ndarray:
    """DressCode keypoints JSON -> COCO-18 (18,3) in 768x1024 pixels (x, y scaled by 2; missing = 0)."""
    try:
        kps = np.asarray(json.loads(data)["keypoints"], dtype=np.float32)
    except (KeyError, ValueError, TypeError) as exc:
        raise SampleError("pose", f"unreadable DressCode keypoints: {exc}", path) from exc
    if kps.ndim != 2 or kps.shape[0] != 18 or kps.shape[1] < 2:
        raise SampleError("pose", f"expected 18 keypoints of >= 2 values, got shape {kps.shape}", path)
    xy = kps[:, :2] * np.array([PERSON_SIZE[0] / 384, PERSON_SIZE[1] / 512], np.float32)
    present = (kps[:, 0] > 1) | (kps[:, 1] > 1)  # loaders treat x,y <= 1 as missing
    out = np.zeros((18, 3), np.float32)
    out[present, :2] = xy[present]
    out[present, 2] = 1.0
    return out


def make_sample(item: PlannedSample) -> Sample:
    b = SampleBuilder(item.key)
    size = PERSON_SIZE
    given = Producer("dresscode-dataset", note="passed through from the source folder")

    def read(role: str) -> bytes:
        return Path(item.files[role]).read_bytes()

    image_bytes = read("image")
    image = decode_or_fail(read_rgb, image_bytes, item.files["image"], "image")
    if (image.shape[1], image.shape[0]) != size:
        raise SampleError("image", f"size {image.shape[1]}x{image.shape[0]}, expected {size[0]}x{size[1]}",
                          item.files["image"])
    b.put("image", jpeg_passthrough(image_bytes, size) or codecs.encode_jpeg(image), given)

    atr = decode_or_fail(lambda d, w: np.asarray(Image.open(io.BytesIO(d))), read("label_map"), item.files["label_map"],
                  "parse")
    if atr.ndim != 2:
        raise SampleError("parse", f"label map must be single-channel, got shape {atr.shape}", item.files["label_map"])
    check_same_size(atr, image, item.files["label_map"], "parse")
    if atr.max() > 17:
        raise SampleError("parse", f"label {int(atr.max())} outside ATR 0..17", item.files["label_map"])
    parse = atr_to_cihp(atr)
    b.put_array("parse", parse, Producer("dresscode-label_maps", note="SCHP-ATR ids remapped to CIHP; no neck label"))

    coco = read_dresscode_keypoints(read("pose"), item.files["pose"])
    pose25 = coco18_to_body25(coco)
    zeros = lambda n: np.zeros((n, 3), np.float32)  # noqa: E731
    kp = OpenPoseKeypoints(pose=pose25, face=zeros(70), hand_left=zeros(21), hand_right=zeros(21))
    b.put("pose", codecs.encode_json(kp.to_json_dict()),
          Producer("dresscode-keypoints", note="OpenPose COCO-18 at 384x512, scaled x2 and converted to BODY_25 "
                   "(MidHip synthesised, no feet/face/hands)"))
    b.put_array("pose_render", render_pose(kp, size), Producer("vitonprep-render-pose"))

    pose18_384 = coco.copy()
    pose18_384[:, :2] *= np.array([384 / size[0], 512 / size[1]], np.float32)
    try:
        agn_mask = dresscode_mask(item.category, atr, pose18_384, size[1], size[0])
    except ValueError as exc:
        raise SampleError("agnostic", str(exc), item.files["pose"]) from exc
    mask_producer = Producer("dresscode-mask", note="DressCode test-time mask recipe")
    b.put_array("agn_mask", agn_mask, mask_producer)
    b.put_array("agn", np.where(agn_mask[..., None], np.uint8(128), image).astype(np.uint8), mask_producer)
    if item.category == "upper_body":
        try:
            parse_agn = agn_mod.parse_agnostic(parse, pose25)
        except ValueError as exc:
            raise SampleError("agnostic", str(exc), item.files["pose"]) from exc
        b.put_array("parse_agn", parse_agn, Producer("vitonprep-parse-agnostic", note="HR-VITON get_parse_agnostic"))
    else:
        b.put_array("parse_agn", np.where(agn_mask, 0, parse).astype(np.uint8),
                    Producer("vitonprep-parse-masked", note="parse with the agnostic-mask region set to background"))
    b.put_array("gt_cloth_warped_mask", np.isin(parse, GARMENT_LABELS[item.category]),
                Producer("vitonprep-parse-cloth", note=f"CIHP labels {GARMENT_LABELS[item.category]}"))

    if "image_densepose" in item.files:
        dp_bytes = read("image_densepose")
        dp = decode_or_fail(read_rgb, dp_bytes, item.files["image_densepose"], "image_densepose")
        check_same_size(dp, image, item.files["image_densepose"], "image_densepose")
        b.put("image_densepose", jpeg_passthrough(dp_bytes, size) or codecs.encode_jpeg(dp), given)
    else:
        parts = decode_or_fail(lambda d, w: np.asarray(Image.open(io.BytesIO(d))), read("dense"), item.files["dense"],
                        "image_densepose")
        if parts.ndim == 3:
            parts = parts[..., 0]
        check_same_size(parts, image, item.files["dense"], "image_densepose")
        try:
            rendered = render_densepose(parts.astype(np.uint8))
        except ValueError as exc:
            raise SampleError("image_densepose", str(exc), item.files["dense"]) from exc
        b.put_array("image_densepose", rendered,
                    Producer("dresscode-dense", note="dense/ part indices rendered with PARULA on black"))

    put_garment(b, item, given, Producer("ladi-vton-masks", note="masks/ thresholded at 128"))
    return b.finish_meta(sample_identity(item, image.shape), source={"dataset": "dresscode", "licence": LICENCE})
