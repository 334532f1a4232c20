"""`vitonprep export --format dresscode`: the DressCode layout (docs/exports.md).

Checked against aimagelab/dress-code@2e9e7ed ``data/dataset.py`` (``Dataset``) and yisol/IDM-VTON@0d5f3ec
``inference_dc.py`` (``DresscodeTestDataset``)::

    {root}/{category}/{train_pairs.txt | test_pairs_paired.txt | test_pairs_unpaired.txt}   "person cloth"
    {root}/{category}/train_pairs_unpaired.txt   ours: unpaired train samples, never in train_pairs.txt
    {root}/{category}/images/NNNNNN_0.jpg (person) and NNNNNN_1.jpg (garment), 768x1024
    {root}/{category}/keypoints/NNNNNN_2.json   {"keypoints": [[x, y, score, -1] x 18]}, COCO-18, 384x512 space
    {root}/{category}/label_maps/NNNNNN_4.png   SCHP-ATR ids 0..17, single channel (L)
    {root}/{category}/skeletons/NNNNNN_5.jpg    RGB skeleton (our BODY_25 render)
    {root}/{category}/dense/NNNNNN_5.png        DensePose part index I 0..24 (L) + NNNNNN_5_uv.npz ('uv')
    {root}/{category}/image-densepose/NNNNNN_0.jpg  IDM-VTON's addition, PARULA rendering
    {root}/{category}/dc_caption.txt            IDM-VTON's addition: "<garment file> <tag words>"
    {root}/{category}/masks/NNNNNN_1.png        LaDI-VTON's garment masks; agnostic_masks/NNNNNN_0.png CatVTON's

DressCode names are 6-digit numbers: every person and garment id gets one (a paired garment shares its
person's number); ``vitonprep_ids.json`` maps them back. Our DensePose has no UV coordinates: ``_5_uv.npz``
holds zeros of shape (2, H, W) so the loaders run, and ``vitonprep_ids.json`` says so — do not train on dense_uv.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Callable

import numpy as np

from vitonprep.derive.body25 import OpenPoseKeypoints, body25_to_coco18
from vitonprep.derive.densepose import parts_from_densepose_image
from vitonprep.derive.labels import cihp_to_atr
from vitonprep.export.common import (
    Export,
    ExportReport,
    decoded,
    jpeg_bytes,
    json_bytes,
    lines_bytes,
    png_bytes,
)
from vitonprep.export.idm_vton import IDM_TAG_NAMES, sample_caption

logger = logging.getLogger(__name__)

KEYPOINT_SPACE = (384, 512)  # DressCode keypoints are in this (width, height), loaders rescale by H/512


def dresscode_keypoints(pose_json: dict, size: tuple[int, int]) -> dict:
    """OpenPose BODY_25 (pixels of a ``size`` image) -> DressCode ``{"keypoints": [[x, y, score, -1] x 18]}``
    in 384x512; missing joints are all zero except the -1 (loaders treat x, y <= 1 as missing)."""
    coco = body25_to_coco18(OpenPoseKeypoints.from_json_dict(pose_json).pose)
    sx, sy = KEYPOINT_SPACE[0] / size[0], KEYPOINT_SPACE[1] / size[1]
    pts = [[round(float(x) * sx, 3), round(float(y) * sy, 3), round(float(c), 4), -1.0] if c > 0
           else [0.0, 0.0, 0.0, -1.0] for x, y, c in coco]
    return {"keypoints": pts}


def export_dresscode(shard_dir: Path, out: Path, progress: Callable[[str], None] | None = None,
                     keep_flagged: bool = False) -> ExportReport:
    """Library twin of `vitonprep export --format dresscode`."""
    exp = Export(shard_dir, out, progress, keep_flagged)
    samples = list(exp.samples())  # numbers are given over the sorted ids of every sound sample
    ids = sorted({m["person_id"] for _, m, _ in samples} | {m["cloth_id"] for _, m, _ in samples if m["cloth_id"]})
    number = {i: f"{n + 1:06d}" for n, i in enumerate(ids)}
    captions: dict[str, dict[str, str]] = {}
    for sample, meta, shard in samples:
        cat, pid, cid = meta["category"], meta["person_id"], meta["cloth_id"]
        p, c = number[pid], number.get(cid)
        caption: list[str | None] = [None]

        def build() -> dict[Path, bytes]:
            image = decoded(sample, "image")
            h, w = image.shape[:2]
            files = {
                f"images/{p}_0.jpg": sample.members["image.jpg"],
                f"keypoints/{p}_2.json": json_bytes(dresscode_keypoints(decoded(sample, "pose"), (w, h))),
                f"label_maps/{p}_4.png": png_bytes(cihp_to_atr(decoded(sample, "parse")), "L"),
                f"image-densepose/{p}_0.jpg": sample.members["image_densepose.jpg"],
                f"dense/{p}_5.png": png_bytes(parts_from_densepose_image(decoded(sample, "image_densepose")), "L"),
                f"dense/{p}_5_uv.npz": _zero_uv(h, w),
                f"agnostic_masks/{p}_0.png": png_bytes(decoded(sample, "agn_mask").astype(np.uint8) * 255, "L"),
            }
            render = decoded(sample, "pose_render")
            if render is not None:
                files[f"skeletons/{p}_5.jpg"] = jpeg_bytes(render)
            if c is not None:
                files[f"images/{c}_1.jpg"] = sample.members["cloth.jpg"]
                files[f"masks/{c}_1.png"] = png_bytes(decoded(sample, "cloth_mask").astype(np.uint8) * 255, "L")
                cap = sample_caption(sample, meta)
                if cap is not None:
                    caption[0] = " ".join(cap["tags"][k] for k in IDM_TAG_NAMES if cap["tags"].get(k))
            # the category (from data) names the top folder; the rest of each name is our number
            return {exp.path(f"{{cat}}/{rel}", cat=cat): data for rel, data in files.items()}

        if not exp.write_sample(sample, shard, build):
            continue
        if caption[0] is not None:
            captions.setdefault(cat, {})[f"{c}_1.jpg"] = caption[0]
        # DressCode trains on train_pairs.txt with both columns as given: an unpaired line there would be a target
        # that does not wear its garment, so it goes to train_pairs_unpaired.txt (the rule of every format)
        exp.list_pair(meta, f"{p}_0.jpg {c}_1.jpg", folder=cat)
    exp.write_pair_lists()
    for cat, caps in captions.items():
        exp.write_extra("{cat}/dc_caption.txt", lines_bytes([f"{k} {v}" for k, v in caps.items()]), cat=cat)
    exp.write_extra("vitonprep_ids.json", json.dumps({
        "ids": {number[i]: i for i in ids},
        "dense_uv": "zeros: vitonprep has no DensePose UV; the file exists so loaders run, do not train on it",
        "skeletons": "BODY_25 render (VITON-HD openpose_img style), not DressCode's 18-point drawing",
        "keypoints_4th_value": "-1 (the meaning of DressCode's 3rd/4th values is undocumented; loaders use x, y)",
    }, indent=1).encode())
    exp.report.renamed = sum(1 for i in ids if number[i] != i)
    exp.report.id_map = "vitonprep_ids.json"
    return exp.finish()


def _zero_uv(h: int, w: int) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, uv=np.zeros((2, h, w), np.float32))
    return buf.getvalue()
