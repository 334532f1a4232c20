"""VITON-HD folders -> shards. Reads the 2021 dashed names (image-parse, openpose-json) and the v3 names.

What the folder ships is passed through (JPEG bytes unchanged); what it lacks is derived with the deterministic
algorithms of `vitonprep.derive` (agnostic, agnostic-mask, parse-agnostic, gt_cloth_warped_mask, skeleton) or,
for DensePose and cloth masks, with the offline back-ends, recorded per field in ``meta.producers``.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from vitonprep import codecs
from vitonprep.assemble import Producer, SampleBuilder, jpeg_passthrough, read_mask_any, read_rgb
from vitonprep.backends import densepose_approx
from vitonprep.convert.base import (
    ConvertConfig,
    PlannedSample,
    check_same_size,
    decode_or_fail,
    put_garment,
    sample_identity,
)
from vitonprep.derive import agnostic as agn_mod
from vitonprep.derive.body25 import OpenPoseKeypoints
from vitonprep.derive.densepose import render_densepose
from vitonprep.derive.labels import palette_image_to_labels
from vitonprep.derive.pose_render import render_pose
from vitonprep.errors import SampleError
from vitonprep.schema import PERSON_SIZE, SPLITS, sample_key
from vitonprep.shards import Failure, Sample

logger = logging.getLogger(__name__)

LAYOUT_HINT = "expected image/, cloth/, image-parse(-v3)/, openpose(_|-)json/ directly or under train/ and test/"
LICENCE = "VITON-HD: CC BY-NC 4.0, research purposes only"

#: role -> (candidate folder names, file name pattern from the id)
ROLES: dict[str, tuple[tuple[str, ...], str]] = {
    "image": (("image",), "{id}.jpg"),
    "cloth": (("cloth",), "{id}.jpg"),
    "cloth_mask": (("cloth-mask", "cloth_mask"), "{id}.jpg"),
    "parse": (("image-parse-v3", "image-parse"), "{id}.png"),
    "parse_agn": (("image-parse-agnostic-v3.2",), "{id}.png"),
    "pose": (("openpose_json", "openpose-json"), "{id}_keypoints.json"),
    "pose_render": (("openpose_img", "openpose-img"), "{id}_rendered.png"),
    "image_densepose": (("image-densepose",), "{id}.jpg"),
    "agn": (("agnostic-v3.2",), "{id}.jpg"),
    "agn_mask": (("agnostic-mask",), "{id}_mask.png"),
    "gt_cloth_warped_mask": (("gt_cloth_warped_mask",), "{id}.jpg"),
}
PERSON_ROLES = ("image", "parse", "parse_agn", "pose", "pose_render", "image_densepose", "agn", "agn_mask",
                "gt_cloth_warped_mask")
CLOTH_ROLES = ("cloth", "cloth_mask")
REQUIRED_ROLES = ("image", "parse", "pose", "cloth")


def _folder(split_dir: Path, role: str) -> Path | None:
    for name in ROLES[role][0]:
        if (split_dir / name).is_dir():
            return split_dir / name
    return None


def _file(split_dir: Path, role: str, ident: str) -> Path | None:
    folder = _folder(split_dir, role)
    if folder is None:
        return None
    p = folder / ROLES[role][1].format(id=ident)
    return p if p.is_file() else None


def find_splits(root: Path, default_split: str) -> dict[str, Path]:
    found = {s: root / s for s in SPLITS if (root / s / "image").is_dir()}
    if found:
        return found
    if (root / "image").is_dir():
        return {default_split: root}
    return {}


def read_pairs(root: Path, split: str, split_dir: Path) -> list[tuple[str, str]]:
    """Lines ``person.jpg cloth.jpg`` of ``{split}_pairs.txt`` (root or split folder), as id pairs."""
    for cand in (root / f"{split}_pairs.txt", split_dir / f"{split}_pairs.txt"):
        if cand.is_file():
            pairs = []
            for n, line in enumerate(cand.read_text().splitlines(), 1):
                parts = line.split()
                if not parts:
                    continue
                if len(parts) < 2:
                    raise SampleError("plan", f"{cand}:{n}: expected 'person.jpg cloth.jpg', got {line!r}")
                pairs.append((Path(parts[0]).stem, Path(parts[1]).stem))
            return pairs
    return []


def plan(cfg: ConvertConfig) -> tuple[list[PlannedSample | Failure], dict[str, Any]]:
    root = cfg.source
    splits = find_splits(root, cfg.default_split)
    planned: list[PlannedSample | Failure] = []
    for split, split_dir in sorted(splits.items()):
        persons = sorted(p.stem for p in (split_dir / "image").glob("*.jpg"))
        person_set = set(persons)
        combos: list[tuple[str, str, str]] = []  # (person, cloth, pair)
        with_garment = set()
        for pid in persons:
            if _file(split_dir, "cloth", pid):
                combos.append((pid, pid, "paired"))
                with_garment.add(pid)
        for pid, cid in read_pairs(root, split, split_dir):
            if pid == cid:
                continue  # a paired line: already planned from the folder
            if pid not in person_set:
                planned.append(Failure(str(split_dir / "image" / f"{pid}.jpg"), "plan",
                                       f"{split}_pairs.txt names person {pid} but image/{pid}.jpg is missing"))
                continue
            combos.append((pid, cid, "unpaired"))
            with_garment.add(pid)
        for pid in persons:
            if pid not in with_garment:
                planned.append(Failure(str(split_dir / "image" / f"{pid}.jpg"), "plan",
                                       f"no garment for person {pid}: no cloth/{pid}.jpg and no pair line"))
        for pid, cid, pair in sorted(combos, key=lambda c: (c[2], c[0], c[1])):
            key = sample_key(pid, cid, pair)
            files = {}
            for role in PERSON_ROLES:
                p = _file(split_dir, role, pid)
                if p:
                    files[role] = str(p)
            for role in CLOTH_ROLES:
                p = _file(split_dir, role, cid)
                if p:
                    files[role] = str(p)
            missing = [r for r in REQUIRED_ROLES if r not in files]
            if missing:
                names = ", ".join(f"{ROLES[r][0][0]}/{ROLES[r][1].format(id=cid if r in CLOTH_ROLES else pid)}"
                                  for r in missing)
                planned.append(Failure(files.get("image", str(split_dir / "image" / f"{pid}.jpg")), "plan",
                                       f"sample {key}: missing {names}", key))
                continue
            planned.append(PlannedSample(key, split, pair, "upper_body", pid, cid, files, str(root)))
    info = {"source_dataset": "vitonhd", "splits": sorted(splits)}
    return planned, info


def make_sample(item: PlannedSample) -> Sample:
    """Make one sample; raise SampleError(stage, reason) naming the file on any problem."""
    b = SampleBuilder(item.key)
    size = PERSON_SIZE
    given = Producer("vitonhd-dataset", note="passed through from the source folder")

    def read(role: str) -> bytes:
        try:
            return Path(item.files[role]).read_bytes()
        except OSError as exc:
            raise SampleError("read", str(exc), item.files[role]) from exc

    # person photo
    image_bytes = read("image")
    image = decode_or_fail(read_rgb, image_bytes, item.files["image"], "image")
    if (image.shape[1], image.shape[0]) != size:
        raise SampleError("image", f"size {image.shape[1]}x{image.shape[0]}, expected {size[0]}x{size[1]} "
                          "(VITON-HD maps are 768x1024; use `vitonprep build` to resize raw photos)",
                          item.files["image"])
    passthrough = jpeg_passthrough(image_bytes, size)
    if passthrough:
        b.put("image", passthrough, given)
    else:
        b.put_array("image", image, Producer("vitonhd-dataset", note="re-encoded to RGB JPEG q95"))

    # parse
    parse = decode_or_fail(lambda d, w: palette_image_to_labels(Image.open(io.BytesIO(d))), read("parse"),
                    item.files["parse"], "parse")
    check_same_size(parse, image, item.files["parse"], "parse")
    if parse.max() > 19:
        raise SampleError("parse", f"label {int(parse.max())} outside CIHP 0..19", item.files["parse"])
    b.put_array("parse", parse, given)

    # keypoints
    try:
        kp = OpenPoseKeypoints.from_json_dict(json.loads(read("pose")))
    except (ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise SampleError("pose", f"unreadable OpenPose JSON: {exc}", item.files["pose"]) from exc
    b.put("pose", codecs.encode_json(kp.to_json_dict()), given)

    if "pose_render" in item.files:
        render = decode_or_fail(read_rgb, read("pose_render"), item.files["pose_render"], "pose_render")
        check_same_size(render, image, item.files["pose_render"], "pose_render")
        b.put_array("pose_render", render, given)
    else:
        b.put_array("pose_render", render_pose(kp, size), Producer("vitonprep-render-pose"))

    # agnostic image, mask and parse
    derived = Producer("vitonprep-hrviton-agnostic", note="HR-VITON get_agnostic geometry")
    try:
        if "agn_mask" in item.files:
            agn_mask = read_mask_any(read("agn_mask"), item.files["agn_mask"])
            b.put_array("agn_mask", agn_mask, Producer("vitonhd-dataset", note="thresholded at 128"))
        else:
            agn_mask = agn_mod.agnostic_mask(parse.shape, parse, kp.pose)
            b.put_array("agn_mask", agn_mask, derived)
        if "agn" in item.files:
            _put_given_jpeg(b, "agn", item, read, image, size, given)
        else:
            b.put_array("agn", agn_mod.agnostic_image(image, parse, kp.pose), derived)
        if "parse_agn" in item.files:
            parse_agn = decode_or_fail(lambda d, w: palette_image_to_labels(Image.open(io.BytesIO(d))),
                                       read("parse_agn"), item.files["parse_agn"], "parse_agn")
            b.put_array("parse_agn", parse_agn, given)
        else:
            b.put_array("parse_agn", agn_mod.parse_agnostic(parse, kp.pose),
                        Producer("vitonprep-parse-agnostic", note="HR-VITON get_parse_agnostic"))
    except ValueError as exc:  # degenerate keypoints (e.g. missing hips)
        raise SampleError("agnostic", str(exc), item.files["pose"]) from exc

    if "gt_cloth_warped_mask" in item.files:
        path = item.files["gt_cloth_warped_mask"]
        b.put_array("gt_cloth_warped_mask", read_mask_any(read("gt_cloth_warped_mask"), path), given)
    else:
        b.put_array("gt_cloth_warped_mask", agn_mod.gt_cloth_warped_mask(parse),
                    Producer("vitonprep-parse-cloth", note="parse labels 5/6/7 (upper clothes, dress, coat)"))

    # DensePose
    if "image_densepose" in item.files:
        _put_given_jpeg(b, "image_densepose", item, read, image, size, given)
    else:
        parts = densepose_approx.approximate_densepose_parts(parse, kp.pose)
        b.put_array("image_densepose", render_densepose(parts),
                    Producer(densepose_approx.NAME, approximate=True,
                             note="no image-densepose in the source: DensePose parts approximated from parse + pose"))

    put_garment(b, item, given, Producer("vitonhd-dataset", note="JPEG mask thresholded at 128"))
    return b.finish_meta(sample_identity(item, image.shape), source={"dataset": "vitonhd", "licence": LICENCE})


def _put_given_jpeg(b: SampleBuilder, name: str, item: PlannedSample, read: Callable[[str], bytes],
                    image: np.ndarray, size: tuple[int, int], given: Producer) -> None:
    """A photo-sized RGB map the folder ships: its JPEG bytes as they are when they can be, else re-encoded."""
    data = read(name)
    arr = decode_or_fail(read_rgb, data, item.files[name], name)
    check_same_size(arr, image, item.files[name], name)
    b.put(name, data if jpeg_passthrough(data, size) else codecs.encode_jpeg(arr), given)
