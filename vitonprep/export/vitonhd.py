"""`vitonprep export`: shards -> the VITON-HD v3 folder layout that the official StableVITON loader reads.

Layout and encodings follow the VITON-HD release (docs/architecture.md, "Data contract"):
``{split}/image/<id>.jpg`` (stored JPEG bytes, q95),
``cloth-mask/`` L JPEG q75, ``image-parse-v3/`` and ``image-parse-agnostic-v3.2/`` palette PNG,
``openpose_json/<id>_keypoints.json``, ``openpose_img/<id>_rendered.png``, ``image-densepose/``,
``agnostic-v3.2/`` (stored bytes, q75), ``agnostic-mask/<id>_mask.png`` (white = inpaint) and
``gt_cloth_warped_mask/<id>.jpg`` (L JPEG, StableVITON training), plus the pair lists at the root by the one
rule of every format (``vitonprep.export.common``): ``train_pairs.txt`` holds the paired lines only,
``{split}_pairs_unpaired.txt`` the unpaired ones (CatVTON reads ``test_pairs_unpaired.txt``) and
``test_pairs_paired.txt`` the paired test lines; ``test_pairs.txt``, which StableVITON and IDM-VTON read at test
time, repeats the unpaired test lines as VITON-HD ships them (the paired ones when the split has none).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

from vitonprep.export.common import Export, ExportReport, _mask_jpeg, lines_bytes, pair_list_template
from vitonprep.schema import FIELDS_BY_NAME
from vitonprep.shards import Sample

logger = logging.getLogger(__name__)

#: field -> (folder, file name pattern, how to write: "bytes" | "mask_jpg")
VITONHD_LAYOUT: dict[str, tuple[str, str, str]] = {
    "image": ("image", "{pid}.jpg", "bytes"),
    "cloth": ("cloth", "{cid}.jpg", "bytes"),
    "cloth_mask": ("cloth-mask", "{cid}.jpg", "mask_jpg"),
    "parse": ("image-parse-v3", "{pid}.png", "bytes"),
    "parse_agn": ("image-parse-agnostic-v3.2", "{pid}.png", "bytes"),
    "pose": ("openpose_json", "{pid}_keypoints.json", "bytes"),
    "pose_render": ("openpose_img", "{pid}_rendered.png", "bytes"),
    "image_densepose": ("image-densepose", "{pid}.jpg", "bytes"),
    "agn": ("agnostic-v3.2", "{pid}.jpg", "bytes"),
    "agn_mask": ("agnostic-mask", "{pid}_mask.png", "bytes"),  # stored masks are L PNG {0,255} already
    "gt_cloth_warped_mask": ("gt_cloth_warped_mask", "{pid}.jpg", "mask_jpg"),
}


def vitonhd_files(exp: Export, sample: Sample, meta: dict[str, Any]) -> dict[Path, bytes]:
    """The files of one (validated) sample in the VITON-HD layout, named by its person and cloth ids."""
    files = {}
    for name, (folder, pattern, how) in VITONHD_LAYOUT.items():
        data = sample.members.get(FIELDS_BY_NAME[name].member)
        if data is None:
            continue
        if how == "mask_jpg":
            data = _mask_jpeg(data)
        ids = {"pid": meta["person_id"]} if "{pid}" in pattern else {"cid": meta["cloth_id"]}
        files[exp.path(f"{{split}}/{folder}/{pattern}", split=meta["split"], **ids)] = data
    return files


def add_pair(exp: Export, meta: dict[str, Any]) -> None:
    exp.list_pair(meta, f"{meta['person_id']}.jpg {meta['cloth_id']}.jpg")


def write_pair_lists(exp: Export) -> None:
    """Each split's paired and unpaired lists, then VITON-HD's ``test_pairs.txt`` (the list its loaders read at
    test time): the unpaired test lines, or the paired ones when there is no unpaired test sample."""
    exp.write_pair_lists()
    if "test_pairs_unpaired.txt" in exp.report.pairs:
        pairing = "unpaired" if exp.report.pairs["test_pairs_unpaired.txt"] else "paired"
        lines = exp.report.pairs[pair_list_template("test", pairing).format(split="test")]
        exp.write_extra("test_pairs.txt", lines_bytes(lines))
        exp.report.pairs["test_pairs.txt"] = lines
        exp.report.lists[pairing].append("test_pairs.txt")


def export_vitonhd(shard_dir: Path, out: Path, progress: Callable[[str], None] | None = None,
                   keep_flagged: bool = False) -> ExportReport:
    """Library twin of `vitonprep export --format vitonhd`."""
    exp = Export(shard_dir, out, progress, keep_flagged)
    for sample, meta, shard in exp.samples():
        if exp.write_sample(sample, shard, lambda: vitonhd_files(exp, sample, meta)):
            add_pair(exp, meta)
    write_pair_lists(exp)
    return exp.finish()
