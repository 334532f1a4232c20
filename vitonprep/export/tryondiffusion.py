"""`vitonprep export --format tryondiffusion`: inputs of the TryOnDiffusion re-implementations.

Checked against fashn-AI/tryondiffusion@124c053 (README.md and ``examples/test_tryon_imagen_trainer.py``), which
ships no data code: its batch is ``person_images``, ``ca_images``, ``garment_images`` (3xHxW, square, 128 for the
base UNet and 256 for the SR UNet; ``auto_normalize_img=False`` so it expects [-1, 1]) and ``person_poses``,
``garment_poses`` of shape (18, 2) fed through ``nn.Linear(2, ...)`` (its examples use ``torch.randn``, i.e.
values of order 1 around 0).

Layout written (files; one folder per split and resolution)::

    {root}/{split}/{128,256}/person/<key>.png    RGB person, padded to a square (white sides)
    {root}/{split}/{128,256}/ca/<key>.png        clothing-agnostic RGB (VITON-HD agnostic, gray 128 region)
    {root}/{split}/{128,256}/garment/<key>.png   garment photo with the background (cloth mask False) black
    {root}/{split}/poses/<key>.json              {"person_pose": [[x, y] x 18], "garment_pose": ..., visibility,
                                                  "garment_pose_source"}; COCO-18 order
    {root}/{split}/index.json                    sample keys

or, with ``as_shards`` (CLI ``--shards``), one WebDataset tar per split and resolution,
``{root}/{split}/tryondiffusion-{res}.tar`` with members ``<key>.person.png``, ``<key>.ca.png``,
``<key>.garment.png`` and ``<key>.poses.json`` (the same bytes as the files).

Poses are normalised to [-1, 1] in the padded square ((x + pad) / S * 2 - 1, y / S * 2 - 1) so they are
independent of the resolution; missing joints are (-1, -1) with visibility 0. Images are stored as uint8 PNG
(a loader divides by 127.5 and subtracts 1). The garment-wearer pose is the pose found on the garment photo
(``cloth_pose.json``) when there is one; for paired samples without it, the person is the wearer
(``paired_person``); otherwise all joints are missing (``none``).
"""

from __future__ import annotations

import io
import json
import logging
import tarfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from vitonprep.derive.openpose import OpenPoseKeypoints, body25_to_coco18
from vitonprep.export.common import ExportReport, _write_once, decoded, iter_samples, json_bytes, png_bytes

logger = logging.getLogger(__name__)

RESOLUTIONS = (128, 256)


def square_pad(rgb: np.ndarray, fill: int) -> tuple[np.ndarray, int, int]:
    """Pad HxW to the square of side max(H, W), centred; returns the image and the (x, y) offsets."""
    h, w = rgb.shape[:2]
    s = max(h, w)
    out = np.full((s, s, 3), fill, np.uint8)
    x0, y0 = (s - w) // 2, (s - h) // 2
    out[y0:y0 + h, x0:x0 + w] = rgb
    return out, x0, y0


def normalised_pose(pose_json: dict | None, size: tuple[int, int]) -> tuple[list[list[float]], list[int]]:
    """BODY_25 OpenPose JSON (pixels of a ``size`` image) -> COCO-18 (18, 2) in [-1, 1] of the padded square."""
    if pose_json is None:
        return [[-1.0, -1.0]] * 18, [0] * 18
    coco = body25_to_coco18(OpenPoseKeypoints.from_json_dict(pose_json).pose)
    w, h = size
    s = max(w, h)
    x0, y0 = (s - w) / 2, (s - h) / 2
    xy, vis = [], []
    for x, y, c in coco:
        if c > 0:
            xy.append([round((float(x) + x0) / s * 2 - 1, 5), round((float(y) + y0) / s * 2 - 1, 5)])
            vis.append(1)
        else:
            xy.append([-1.0, -1.0])
            vis.append(0)
    return xy, vis


class _Sink:
    """Files under ``out`` or members of one tar per (split, resolution)."""

    def __init__(self, out: Path, as_shards: bool):
        self.out, self.as_shards = out, as_shards
        self.tars: dict[Path, tarfile.TarFile] = {}

    def put(self, split: str, res: int | None, kind: str, key: str, ext: str, data: bytes) -> int:
        if not self.as_shards:
            sub = self.out / split / (str(res) if res else "") / kind
            return int(_write_once(sub / f"{key}.{ext}", data))
        # the poses go into every resolution's tar, so each tar is a complete sample set
        names = [self.out / split / f"tryondiffusion-{r}.tar" for r in ((res,) if res else RESOLUTIONS)]
        for name in names:
            tar = self.tars.get(name)
            if tar is None:
                name.parent.mkdir(parents=True, exist_ok=True)
                tar = self.tars[name] = tarfile.open(name.with_name(name.name + ".partial"), "w")
            info = tarfile.TarInfo(f"{key}.{kind}.{ext}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        return len(names)

    def close(self) -> None:
        for name, tar in self.tars.items():
            tar.close()
            name.with_name(name.name + ".partial").replace(name)


def export_tryondiffusion(shard_dir: Path, out: Path, progress: Callable[[str], None] | None = None,
                          as_shards: bool = False) -> ExportReport:
    """Library twin of `vitonprep export --format tryondiffusion` (samples without a garment are skipped)."""
    report = ExportReport()
    sink = _Sink(out, as_shards)
    keys: dict[str, list[str]] = {}
    sources: dict[str, int] = {}
    for sample, meta in iter_samples(shard_dir):
        cloth = decoded(sample, "cloth")
        if cloth is None:
            continue
        split, key = meta["split"], sample.key
        image = decoded(sample, "image")
        h, w = image.shape[:2]
        person, _, _ = square_pad(image, 255)
        ca, _, _ = square_pad(decoded(sample, "agn"), 255)
        garment = np.where(decoded(sample, "cloth_mask")[..., None], cloth, np.uint8(0)).astype(np.uint8)
        garment, _, _ = square_pad(garment, 0)
        for res in RESOLUTIONS:
            for name, arr in (("person", person), ("ca", ca), ("garment", garment)):
                small = np.asarray(Image.fromarray(arr).resize((res, res), Image.Resampling.BICUBIC))
                report.nfiles += sink.put(split, res, name, key, "png", png_bytes(small, "RGB"))
        cloth_pose = decoded(sample, "cloth_pose")
        if cloth_pose is not None:
            wearer, source = cloth_pose, "cloth_photo"
        elif meta.get("pair") == "paired":
            wearer, source = decoded(sample, "pose"), "paired_person"
        else:
            wearer, source = None, "none"
        pp, pv = normalised_pose(decoded(sample, "pose"), (w, h))
        gp, gv = normalised_pose(wearer, (w, h))
        poses: dict[str, Any] = {"person_pose": pp, "person_visible": pv, "garment_pose": gp, "garment_visible": gv,
                                 "garment_pose_source": source, "order": "COCO-18",
                                 "normalisation": "[-1,1] in the centred square of side max(W,H)"}
        report.nfiles += sink.put(split, None, "poses", key, "json", json_bytes(poses))
        sources[source] = sources.get(source, 0) + 1
        keys.setdefault(split, []).append(key)
        report.nsamples += 1
        if progress:
            progress(key)
    sink.close()
    for split, ks in keys.items():
        (out / split / "index.json").write_text(json.dumps(sorted(ks)))
    report.notes["garment_pose_sources"] = sources
    return report
