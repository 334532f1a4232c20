"""`vitonprep export`: shards -> the VITON-HD v3 folder layout that the official StableVITON loader reads.

Layout and encodings follow the VITON-HD release (docs/architecture.md, "Data contract"):
``{split}/image/<id>.jpg`` (stored JPEG bytes, q95),
``cloth-mask/`` L JPEG q75, ``image-parse-v3/`` and ``image-parse-agnostic-v3.2/`` palette PNG,
``openpose_json/<id>_keypoints.json``, ``openpose_img/<id>_rendered.png``, ``image-densepose/``,
``agnostic-v3.2/`` (stored bytes, q75), ``agnostic-mask/<id>_mask.png`` (white = inpaint) and
``gt_cloth_warped_mask/<id>.jpg`` (L JPEG, StableVITON training), plus ``{split}_pairs.txt`` at the root
(train: paired lines; test: the unpaired lines when there are any, as VITON-HD ships them) and CatVTON's
``test_pairs_unpaired.txt``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

from vitonprep.export.common import Export, ExportReport, _mask_jpeg, lines_bytes
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


def add_pair(pairs: dict[tuple[str, str], list[str]], meta: dict[str, Any]) -> None:
    if meta["pair"] != "person_only":
        pairs.setdefault((meta["split"], meta["pair"]), []).append(f"{meta['person_id']}.jpg {meta['cloth_id']}.jpg")


def write_pair_lists(exp: Export, pairs: dict[tuple[str, str], list[str]]) -> None:
    """``{split}_pairs.txt`` (train: paired; test: unpaired when there are any) and CatVTON's unpaired list."""
    for split in sorted({s for s, _ in pairs}):
        paired, unpaired = pairs.get((split, "paired"), []), pairs.get((split, "unpaired"), [])
        main = paired if split == "train" or not unpaired else unpaired
        exp.write_extra("{split}_pairs.txt", lines_bytes(main), split=split)
        if split == "test" and unpaired:
            exp.write_extra("test_pairs_unpaired.txt", lines_bytes(unpaired))  # CatVTON's name for the same list
        exp.report.pairs[split] = sorted(set(main))


def export_vitonhd(shard_dir: Path, out: Path, progress: Callable[[str], None] | None = None,
                   keep_flagged: bool = False) -> ExportReport:
    """Library twin of `vitonprep export --format vitonhd`."""
    exp = Export(shard_dir, out, progress, keep_flagged)
    pairs: dict[tuple[str, str], list[str]] = {}
    for sample, meta, shard in exp.samples():
        if exp.write_sample(sample, shard, lambda: vitonhd_files(exp, sample, meta)):
            add_pair(pairs, meta)
    write_pair_lists(exp, pairs)
    return exp.finish()
