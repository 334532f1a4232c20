"""Accuracy of the geometric garment tagger against the hand labels (``data/garment_labels.csv``).

Kept apart from `vitonprep.captions`, which the shard decoders import: this needs the photo loader and the
OpenCV cloth mask, which the caption contract does not.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from vitonprep.backends.cloth_mask_opencv import cloth_mask
from vitonprep.captions import GeometricTagger, mask_shape, sleeve_from_mask
from vitonprep.photos import fit_to_canvas, load_photo
from vitonprep.schema import PERSON_SIZE

__all__ = ["evaluate_geometric"]


def evaluate_geometric(labels_csv: Path, data_root: Path) -> dict[str, Any]:
    """Run the geometric tagger on every hand-labelled garment (mask from the default OpenCV back-end, no
    category given) and count agreements per attribute. Returns counts and the per-garment predictions."""
    tagger = GeometricTagger()
    rows, item_ok, sleeve_ok, n_sleeve = [], 0, 0, 0
    with Path(labels_csv).open(newline="") as f:
        labelled = list(csv.DictReader(f))
    for row in labelled:
        rgb, _ = fit_to_canvas(load_photo((data_root / row["file"]).read_bytes(), row["file"]), PERSON_SIZE, "pad")
        mask = cloth_mask(rgb)
        tags = tagger(Path(row["file"]).stem, mask)
        shape = mask_shape(mask)
        sleeve_pred = sleeve_from_mask(shape)[0]
        item_ok += tags.item_class == row["item_class"]
        if row["sleeve"]:
            n_sleeve += 1
            sleeve_ok += sleeve_pred == row["sleeve"]
        rows.append({"file": row["file"], "item": row["item_class"], "item_pred": tags.item_class,
                     "sleeve": row["sleeve"] or None, "sleeve_pred": sleeve_pred if row["sleeve"] else None})
    return {"n": len(labelled), "item_correct": item_ok, "n_sleeve": n_sleeve, "sleeve_correct": sleeve_ok,
            "rows": rows}
