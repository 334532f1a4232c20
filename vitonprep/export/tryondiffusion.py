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
    {root}/{split}/index.json                    keys of the paired samples (training: the person wears the garment)
    {root}/{split}/index_unpaired.json           keys of the unpaired samples (try-on inputs, never training targets)

or, with ``as_shards`` (CLI ``--shards``), one WebDataset tar per split, resolution and pairing,
``{root}/{split}/tryondiffusion-{res}.tar`` (paired) and ``tryondiffusion-{res}-unpaired.tar``, with members
``<key>.person.png``, ``<key>.ca.png``, ``<key>.garment.png`` and ``<key>.poses.json`` (the same bytes as the
files), beside the same index files.

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
import os
import tarfile
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from vitonprep.derive.body25 import OpenPoseKeypoints, body25_to_coco18
from vitonprep.export.common import Export, ExportReport, decoded, json_bytes, png_bytes
from vitonprep.safepaths import safe_name

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


class _TarSink:
    """``--shards``: one tar per (split, resolution), written to a fresh temporary file and renamed when done."""

    def __init__(self, exp: Export):
        self.exp = exp
        self.tars: dict[Path, tuple[tarfile.TarFile, Path]] = {}

    def put(self, path: Path, member: str, data: bytes) -> None:
        if path not in self.tars:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
            self.tars[path] = (tarfile.open(fileobj=os.fdopen(fd, "wb"), mode="w"), Path(tmp))
        info = tarfile.TarInfo(member)
        info.size = len(data)
        self.tars[path][0].addfile(info, io.BytesIO(data))

    def close(self) -> None:
        for path, (tar, tmp) in self.tars.items():
            fh = tar.fileobj
            tar.close()
            fh.close()
            os.replace(tmp, path)
            self.exp.files.add(path)


def tryondiffusion_members(sample: Any, meta: dict[str, Any]) -> tuple[dict[tuple[int | None, str], bytes], str]:
    """``{(resolution or None for poses, kind): bytes}`` of one sample with a garment, and its wearer-pose source."""
    image = decoded(sample, "image")
    h, w = image.shape[:2]
    person, _, _ = square_pad(image, 255)
    ca, _, _ = square_pad(decoded(sample, "agn"), 255)
    garment = np.where(decoded(sample, "cloth_mask")[..., None], decoded(sample, "cloth"), np.uint8(0)).astype(np.uint8)
    garment, _, _ = square_pad(garment, 0)
    members: dict[tuple[int | None, str], bytes] = {}
    for res in RESOLUTIONS:
        for name, arr in (("person", person), ("ca", ca), ("garment", garment)):
            small = np.asarray(Image.fromarray(arr).resize((res, res), Image.Resampling.BICUBIC))
            members[(res, name)] = png_bytes(small, "RGB")
    cloth_pose = decoded(sample, "cloth_pose")
    if cloth_pose is not None:
        wearer, source = cloth_pose, "cloth_photo"
    elif meta["pair"] == "paired":
        wearer, source = decoded(sample, "pose"), "paired_person"
    else:
        wearer, source = None, "none"
    pp, pv = normalised_pose(decoded(sample, "pose"), (w, h))
    gp, gv = normalised_pose(wearer, (w, h))
    poses: dict[str, Any] = {"person_pose": pp, "person_visible": pv, "garment_pose": gp, "garment_visible": gv,
                             "garment_pose_source": source, "order": "COCO-18",
                             "normalisation": "[-1,1] in the centred square of side max(W,H)"}
    members[(None, "poses")] = json_bytes(poses)
    return members, source


def _index_template(split: str, pairing: str) -> str:
    return "{split}/index_unpaired.json" if pairing == "unpaired" else "{split}/index.json"


def export_tryondiffusion(shard_dir: Path, out: Path, progress: Callable[[str], None] | None = None,
                          as_shards: bool = False, keep_flagged: bool = False) -> ExportReport:
    """Library twin of `vitonprep export --format tryondiffusion` (samples without a garment are skipped)."""
    exp = Export(shard_dir, out, progress, keep_flagged)
    sink = _TarSink(exp) if as_shards else None
    sources: dict[str, int] = {}
    for sample, meta, shard in exp.samples():
        if "cloth.jpg" not in sample.members:
            exp.list_pair(meta, sample.key)  # counted as a sample without garment; it has no input here
            continue
        split, key = meta["split"], sample.key
        made: dict[str, Any] = {}

        def build() -> dict[Path, bytes]:
            members, made["source"] = tryondiffusion_members(sample, meta)
            if sink is not None:
                # the poses go into every resolution's tar, so each tar is a complete sample set
                tail = "-unpaired" if meta["pair"] == "unpaired" else ""  # never among training samples
                made["tar"] = {(res, kind, exp.path(f"{{split}}/tryondiffusion-{r}{tail}.tar", split=split)): data
                               for (res, kind), data in members.items() for r in ((res,) if res else RESOLUTIONS)}
                safe_name(key, "sample key")
                return {}
            return {exp.path(f"{{split}}/{res or ''}/{kind}/{{key}}.{'json' if res is None else 'png'}",
                             split=split, key=key): data for (res, kind), data in members.items()}

        if not exp.write_sample(sample, shard, build):
            continue
        if sink is not None:
            for (res, kind, path), data in made["tar"].items():
                sink.put(path, f"{key}.{kind}.{'json' if res is None else 'png'}", data)
        sources[made["source"]] = sources.get(made["source"], 0) + 1
        exp.list_pair(meta, key)
    if sink is not None:
        sink.close()
    exp.write_pair_lists(_index_template, lambda keys: json.dumps(keys).encode())
    exp.report.notes["garment_pose_sources"] = sources
    return exp.finish()
