"""`vitonprep export --format idm-vton`: VITON-HD folders plus IDM-VTON's garment tags.

Checked against yisol/IDM-VTON@0d5f3ec ``train_xl.py`` / ``inference.py`` (``VitonHDDataset``): it reads
``{root}/{phase}_pairs.txt``, ``{root}/{phase}/image/<id>.jpg``, ``cloth/<id>.jpg``,
``agnostic-mask/<id>_mask.png`` (``ToTensor()[:1]``, white = inpaint), ``image-densepose/<id>.jpg`` and
``{root}/{phase}/vitonhd_{phase}_tagged.json``: ``{"data": [{"file_name": "<cloth>.jpg", "category_name",
"tag_info": [{"tag_name", "tag_category"}]}]}``. The caption is ``"model is wearing " + "<sleeveLength>
<neckLine> <item> "`` from the tags whose category is not null; a garment missing from the JSON becomes "shirts".

Tags come from each sample's ``caption.json`` when the shards have one, otherwise from the offline geometric
tagger run here on the stored cloth mask (recorded per entry in ``vitonprep_source``). Pair lists as
``vitonhd``'s: IDM-VTON trains on ``train_pairs.txt`` (paired lines only).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable

from vitonprep.captions import GeometricTagger, caption_record
from vitonprep.export.common import Export, ExportReport, decoded
from vitonprep.export.vitonhd import add_pair, vitonhd_files, write_pair_lists

logger = logging.getLogger(__name__)

#: IDM-VTON's ``category_name`` values (the tagged JSON holds TOPS, WHOLEBODIES, SKIRTS, OUTWEARS)
CATEGORY_NAMES = {"upper_body": "TOPS", "lower_body": "BOTTOMS", "dresses": "WHOLEBODIES"}
#: tag order IDM-VTON builds the caption from (train_xl.py ``annotation_list``)
IDM_TAG_NAMES = ("sleeveLength", "neckLine", "item")


def sample_caption(sample: Any, meta: dict[str, Any], tagger: GeometricTagger | None = None) -> dict[str, Any] | None:
    """The sample's caption record: stored ``caption.json``, else tagged now from the cloth mask (None if the
    sample has no garment)."""
    stored = decoded(sample, "caption")
    if stored is not None:
        return stored
    mask = decoded(sample, "cloth_mask")
    if mask is None:
        return None
    parse = decoded(sample, "parse") if meta.get("pair") == "paired" else None
    tags = (tagger or GeometricTagger())(meta["cloth_id"], mask, parse, meta.get("category"))
    rec = caption_record(tags)
    rec["source"] += " (at export)"
    return rec


def tagged_entry(cloth_file: str, category: str, caption: dict[str, Any]) -> dict[str, Any]:
    tags = caption["tags"]
    info = [{"tag_name": name, "tag_category": tags.get(name)} for name in IDM_TAG_NAMES]
    info += [{"tag_name": k, "tag_category": v} for k, v in sorted(tags.items()) if k not in IDM_TAG_NAMES]
    return {"file_name": cloth_file, "category_name": CATEGORY_NAMES.get(category, "TOPS"), "tag_info": info,
            "vitonprep_source": caption["source"], "vitonprep_approximate": caption["approximate"]}


def export_idm_vton(shard_dir: Path, out: Path, progress: Callable[[str], None] | None = None,
                    keep_flagged: bool = False) -> ExportReport:
    """Library twin of `vitonprep export --format idm-vton`."""
    exp = Export(shard_dir, out, progress, keep_flagged)
    tagger = GeometricTagger()
    entries: dict[str, dict[str, dict[str, Any]]] = {}
    sources: dict[str, int] = {}
    for sample, meta, shard in exp.samples():
        split, cid = meta["split"], meta["cloth_id"]
        caption: list[dict[str, Any] | None] = [None]

        def build() -> dict[Path, bytes]:
            files = vitonhd_files(exp, sample, meta)
            if cid and cid not in entries.get(split, {}):  # tagged before writing: a failure refuses the sample
                caption[0] = sample_caption(sample, meta, tagger)
            return files

        if not exp.write_sample(sample, shard, build):
            continue
        add_pair(exp, meta)
        cap = caption[0]
        if cap is not None:
            entries.setdefault(split, {})[cid] = tagged_entry(f"{cid}.jpg", meta["category"], cap)
            sources[cap["source"]] = sources.get(cap["source"], 0) + 1
    write_pair_lists(exp)
    for split, by_id in entries.items():
        data = json.dumps({"data": [by_id[k] for k in sorted(by_id)]}, indent=1).encode()
        exp.write_extra("{split}/vitonhd_{split}_tagged.json", data, split=split)
    exp.report.notes["caption_sources"] = sources
    return exp.finish()
