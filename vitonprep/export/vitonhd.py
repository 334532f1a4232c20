"""`vitonprep export`: shards -> the VITON-HD v3 folder layout that the official StableVITON loader reads.

Layout and encodings follow preprocess_spec 1.1-1.2: ``{split}/image/<id>.jpg`` (stored JPEG bytes, q95),
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
from typing import Callable

from vitonprep import codecs
from vitonprep.export.common import ExportReport, _mask_jpeg, _write_lines, _write_once
from vitonprep.schema import FIELDS_BY_NAME
from vitonprep.shards import iter_tar_samples, list_shards

logger = logging.getLogger(__name__)

#: field -> (folder, file name pattern, how to write: "bytes" | "mask_jpg" | "mask_png")
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
    "agn_mask": ("agnostic-mask", "{pid}_mask.png", "mask_png"),
    "gt_cloth_warped_mask": ("gt_cloth_warped_mask", "{pid}.jpg", "mask_jpg"),
}


def export_vitonhd(shard_dir: Path, out: Path, progress: Callable[[str], None] | None = None) -> ExportReport:
    """Library twin of `vitonprep export --format vitonhd`."""
    report = ExportReport()
    pairs: dict[tuple[str, str], list[str]] = {}
    for tar_path in list_shards(shard_dir):
        for sample in iter_tar_samples(tar_path):
            meta = codecs.decode_json(sample.members["meta.json"], f"{sample.key}.meta.json")
            split, pid, cid = meta["split"], meta["person_id"], meta["cloth_id"]
            for name, (folder, pattern, how) in VITONHD_LAYOUT.items():
                data = sample.members.get(FIELDS_BY_NAME[name].member)
                if data is None:
                    continue
                if how == "mask_jpg":
                    data = _mask_jpeg(data)
                elif how == "mask_png":
                    codecs.decode_mask(data)  # stored masks are already L PNG {0,255}: check, then copy
                target = out / split / folder / pattern.format(pid=pid, cid=cid)
                report.nfiles += _write_once(target, data)
            if meta["pair"] != "person_only":
                pairs.setdefault((split, meta["pair"]), []).append(f"{pid}.jpg {cid}.jpg")
            report.nsamples += 1
            if progress:
                progress(sample.key)
    for split in sorted({s for s, _ in pairs}):
        paired, unpaired = pairs.get((split, "paired"), []), pairs.get((split, "unpaired"), [])
        main = paired if split == "train" or not unpaired else unpaired
        _write_lines(out / f"{split}_pairs.txt", main)
        if split == "test" and unpaired:
            _write_lines(out / "test_pairs_unpaired.txt", unpaired)  # CatVTON's name for the same list
        report.pairs[split] = main
    return report


