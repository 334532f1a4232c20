"""Garment attributes and captions: the ``caption.json`` shard member and its back-ends.

IDM-VTON conditions on "model is wearing <sleeveLength> <neckLine> <item>" built from the per-garment tags of its
``vitonhd_{train,test}_tagged.json`` (yisol/IDM-VTON train_xl.py ``annotation_list``). A back-end returns
`GarmentTags`; `caption_record` turns them into the stored JSON, which always names its source so a trainer can
tell hand tags from geometric guesses.

Back-ends (chosen by name in ``stages.caption``):
- ``garment-tags-file``: tags per garment from a user JSON or CSV file (``params: {path: ...}``);
- ``garment-tags-geometric``: offline; sleeve length and an item-class hint from the cloth mask, the worn-garment
  item from the person's parse (approximate, measured against ``data/garment_labels.csv``);
- ``garment-tags-clip``: zero-shot CLIP from a local ``transformers`` CLIPModel folder (``params: {path: ...}``);
  never downloads.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vitonprep.backends.protocols import Backend
from vitonprep.errors import ConfigError, InputError

logger = logging.getLogger(__name__)

CAPTION_VERSION = 1
SLEEVES = ("none", "short", "long")
ITEMS = ("upper_body", "lower_body", "dresses")
#: IDM-VTON's tag words for our sleeve classes (the tagged JSON's sleeveLength vocabulary)
IDM_SLEEVE_WORDS = {"none": "Sleeveless", "short": "Short Sleeve", "long": "Long Sleeve"}
#: plain item words used when no finer item tag is known (IDM-VTON falls back to "shirts" itself)
ITEM_WORDS = {"upper_body": "top", "lower_body": "pants", "dresses": "dress"}
#: keys a caption.json must have, with their types (the strict decoder checks them)
CAPTION_KEYS: dict[str, type | tuple[type, ...]] = {
    "version": int, "source": str, "caption": str, "tags": dict, "approximate": bool,
}


@dataclass(frozen=True)
class GarmentTags:
    """Attributes of one garment. ``tags`` uses IDM-VTON tag names (``sleeveLength``, ``neckLine``, ``item``)."""

    tags: dict[str, str]
    source: str
    approximate: bool
    sleeve: str | None = None  # our class: none/short/long (None = unknown)
    item_class: str | None = None  # upper_body/lower_body/dresses hint
    extra: dict[str, Any] = field(default_factory=dict)


def caption_text(tags: dict[str, str]) -> str:
    """IDM-VTON's order: sleeveLength, neckLine, item (train_xl.py), prefixed as its dataset does."""
    words = [tags[k] for k in ("sleeveLength", "neckLine", "item") if tags.get(k)]
    return "model is wearing " + " ".join(words) if words else "model is wearing a garment"


def caption_record(t: GarmentTags) -> dict[str, Any]:
    rec = {"version": CAPTION_VERSION, "source": t.source, "caption": caption_text(t.tags), "tags": dict(t.tags),
           "approximate": t.approximate}
    if t.sleeve is not None:
        rec["sleeve"] = t.sleeve
    if t.item_class is not None:
        rec["item_class"] = t.item_class
    if t.extra:
        rec["evidence"] = t.extra
    return rec


def check_caption(obj: Any) -> dict[str, Any]:
    """Raise ValueError unless ``obj`` is a caption record (the shape `caption_record` writes)."""
    if not isinstance(obj, dict):
        raise ValueError(f"caption must be a JSON object, got {type(obj).__name__}")
    for k, tp in CAPTION_KEYS.items():
        if k not in obj:
            raise ValueError(f"caption is missing {k!r}")
        if not isinstance(obj[k], tp) or (tp is int and isinstance(obj[k], bool)):
            raise ValueError(f"caption.{k} must be {getattr(tp, '__name__', tp)}, got {obj[k]!r}")
    if obj["version"] != CAPTION_VERSION:
        raise ValueError(f"caption.version {obj['version']} is not {CAPTION_VERSION}")
    if not all(isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in obj["tags"].items()):
        raise ValueError("caption.tags must map tag names to strings")
    if obj.get("sleeve") not in (None, *SLEEVES):
        raise ValueError(f"caption.sleeve {obj['sleeve']!r} is not one of {SLEEVES}")
    if obj.get("item_class") not in (None, *ITEMS):
        raise ValueError(f"caption.item_class {obj['item_class']!r} is not one of {ITEMS}")
    return obj


# ---------------------------------------------------------------- geometry on the cloth mask

def _rows(mask: np.ndarray) -> tuple[np.ndarray, int, int, int, int]:
    # row and column any(): np.nonzero would list the coordinates of every garment pixel
    filled_rows = np.flatnonzero(mask.any(axis=1))
    if filled_rows.size == 0:
        raise ValueError("empty cloth mask")
    y0, y1 = int(filled_rows[0]), int(filled_rows[-1]) + 1
    filled_cols = np.flatnonzero(mask[y0:y1].any(axis=0))
    x0, x1 = int(filled_cols[0]), int(filled_cols[-1]) + 1
    return mask[y0:y1, x0:x1], y0, y1, x0, x1


def _row_runs(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of True pixels in every row of a 2-D bool array: (row, start, end) per run, in row-major order."""
    n, w = rows.shape
    padded = np.zeros((n, w + 2), np.int8)
    padded[:, 1:-1] = rows
    edges = np.diff(padded, axis=1)  # +1 at a run's first pixel, -1 one past its last
    row, start = np.nonzero(edges == 1)
    end = np.nonzero(edges == -1)[1]
    return row, start, end


def _central_runs(row: np.ndarray, start: np.ndarray, end: np.ndarray, first: np.ndarray, c: int) -> np.ndarray:
    """Per row (its runs begin at index ``first``), the index of the run containing column ``c``, else of the
    run nearest to it (the leftmost of equally near ones)."""
    distance = np.minimum(abs(start - c), abs(end - 1 - c))
    distance[(start <= c) & (end > c)] = -1  # a run containing c beats every other
    # stable sort: within a row, equal distances keep their left-to-right order
    return np.lexsort((distance, row))[first]


@dataclass(frozen=True)
class MaskShape:
    """Per-row profile of a garment silhouette, rows normalised to the mask's bounding-box height."""

    aspect: float  # bbox height / width
    extent: np.ndarray  # (100,) full row extent / bbox width
    body: np.ndarray  # (100,) width of the central run / bbox width
    runs: np.ndarray  # (100,) number of runs per row
    crotch: float  # fraction of bbox height below which the centre column is empty (trouser legs), 0 if none


def mask_shape(mask: np.ndarray) -> MaskShape:
    crop, *_ = _rows(np.asarray(mask, bool))
    h, w = crop.shape
    c = w // 2
    # the 100 sampled rows (row int((i + 0.5) * h / 100)); every profile comes from one table of their runs
    sampled = crop[np.minimum(h - 1, ((np.arange(100) + 0.5) * h / 100).astype(int))]
    row, start, end = _row_runs(sampled)
    n_runs = np.bincount(row, minlength=100)
    filled = n_runs > 0
    runs_end = np.cumsum(n_runs)  # one past each row's last run
    first, last = (runs_end - n_runs)[filled], runs_end[filled] - 1
    ext, body, runs = np.zeros(100), np.zeros(100), np.zeros(100)
    ext[filled] = (end[last] - start[first]) / w
    central = _central_runs(row, start, end, first, c)
    body[filled] = (end[central] - start[central]) / w
    # counted runs are split only by gaps wider than max(2, 1 % of the width): a step of more than that
    # between consecutive garment pixels
    wide_gap = (start[1:] - end[:-1] + 1 > max(2, w // 100)) & (row[1:] == row[:-1])
    runs[filled] = 1 + np.bincount(row[1:][wide_gap], minlength=100)[filled]
    centre = crop[:, max(0, c - w // 40): c + w // 40 + 1]
    empty_below = 0.0
    if not centre[-1].any():
        last_filled = np.flatnonzero(centre.any(axis=1))
        empty_below = 1 - (last_filled[-1] + 1) / h if last_filled.size else 1.0
    return MaskShape(h / w, ext, body, runs, float(empty_below))


def item_from_mask(shape: MaskShape) -> str:
    """Trousers: tall, with an empty centre column over the lower third (the gap between the legs) and two runs
    per row there. Dresses: much taller than wide (sleeveless tops reach 2.05 on the bundled garments, dresses
    2.9, hence 2.2)."""
    if shape.aspect > 1.8 and shape.crotch > 0.3 and np.median(shape.runs[70:95]) >= 2:
        return "lower_body"
    if shape.aspect > 2.2:
        return "dresses"
    return "upper_body"


def sleeve_from_mask(shape: MaskShape) -> tuple[str, dict[str, float]]:
    """Sleeve class from the row profile of the silhouette (rows 0-99 of its bounding box).

    - none: the garment is widest at the top (straps/shoulders, rows 3-8) and narrows into the armholes; a
      sleeved garment instead widens below the shoulder line (rows 10-29) where the sleeves start.
    - short: the extent drops sharply (by > 18 % of the width within 10 rows) somewhere in rows 10-60: the
      sleeve hem, below which only the torso is left.
    - long: sleeves that widen the silhouette with no such drop before row 60 (they reach the hem or hang
      beside the body).
    """
    ext = shape.extent
    top, below = float(ext[3:9].max()), float(ext[10:30].max())
    drops = ext[10:61] - ext[20:71]
    drop_at = int(np.argmax(drops)) + 10
    ev = {"top_extent": round(top, 3), "shoulder_extent": round(below, 3), "max_drop": round(float(drops.max()), 3),
          "drop_row": drop_at / 100}
    if top >= below - 0.03:
        return "none", ev
    return ("short" if drops.max() > 0.18 else "long"), ev


# ---------------------------------------------------------------- back-ends

#: CIHP labels of worn garments -> item class (person parse, image-parse-v3 ids)
_PARSE_ITEMS = {5: "upper_body", 7: "upper_body", 6: "dresses", 9: "lower_body", 12: "lower_body"}


def worn_item_from_parse(parse: np.ndarray | None, category: str | None = None) -> str | None:
    """The largest worn garment of the sample's category in the person's parse (None if none is visible)."""
    if parse is None:
        return None
    counts = {item: 0 for item in ITEMS}
    for label, item in _PARSE_ITEMS.items():
        counts[item] += np.count_nonzero(parse == label)  # (not .sum(): that widens every bool to an int)
    if category in counts and counts[category] > 0:
        return category
    best = max(counts, key=counts.get)
    return best if counts[best] > 0 else None


class GeometricTagger(Backend):
    """Offline tagger: cloth mask geometry, plus the person parse when the garment is the one worn (paired)."""

    NAME = "garment-tags-geometric"
    KIND = "caption"
    APPROXIMATE = True
    LICENCE = "vitonprep (no model)"

    def __call__(self, cloth_id: str, cloth_mask: np.ndarray | None, parse: np.ndarray | None = None,
                 category: str | None = None, cloth_rgb: np.ndarray | None = None) -> GarmentTags:
        if cloth_mask is None or not np.asarray(cloth_mask).any():
            raise InputError("no cloth mask to tag")
        shape = mask_shape(cloth_mask)
        item = item_from_mask(shape)
        worn = worn_item_from_parse(parse, category)
        if category in ITEMS:
            # the sample's category is the user's statement about the garment; the mask hint only breaks ties
            item = category
        tags: dict[str, str] = {"item": ITEM_WORDS[item]}
        sleeve, ev = (None, {}) if item == "lower_body" else sleeve_from_mask(shape)
        if sleeve is not None:
            tags["sleeveLength"] = IDM_SLEEVE_WORDS[sleeve]
        ev = {**ev, "mask_item_hint": item_from_mask(shape), "aspect": round(shape.aspect, 3)}
        if worn is not None:
            ev["worn_item_from_parse"] = worn
        return GarmentTags(tags, self.NAME, self.APPROXIMATE, sleeve, item, ev)


def _normalise_sleeve(v: str | None) -> str | None:
    if not v:
        return None
    s = v.strip().lower()
    for cls, word in IDM_SLEEVE_WORDS.items():
        if s in (cls, word.lower()):
            return cls
    if s in ("sleeveless", "no", "none"):
        return "none"
    if s in ("cropped sleeve", "3/4", "three-quarter"):
        return "long"
    return None


@dataclass(frozen=True)
class TagFileConfig:
    """``garment-tags-file`` params: the user's tag file (JSON or CSV)."""

    path: str


@dataclass(frozen=True)
class ClipConfig:
    """``garment-tags-clip`` params: a local folder loadable by ``CLIPModel.from_pretrained``."""

    path: str


class FileTagger(Backend):
    """Tags per garment from a user file.

    JSON: either ``{cloth_id: {tag_name: value}}`` or IDM-VTON's tagged JSON (``{"data": [{"file_name",
    "tag_info": [{"tag_name", "tag_category"}]}]}``). CSV: a ``cloth`` (or ``file``) column plus tag columns
    (``sleeveLength``/``sleeve``, ``neckLine``, ``item``). Garment ids are file stems.
    """

    NAME = "garment-tags-file"
    KIND = "caption"
    APPROXIMATE = False
    LICENCE = "as the user's tag file"
    Config = TagFileConfig

    def __init__(self, config: TagFileConfig, weights_dir: str | Path | None = None):
        super().__init__(config, weights_dir)
        self.path = Path(config.path)
        self.table: dict[str, dict[str, str]] = {}
        if not self.path.is_file():  # checked when the pipeline is built, before any image is touched
            raise ConfigError(f"garment tag file {self.path} does not exist")

    def setup(self) -> None:
        if self.table:
            return
        if self.path.suffix.lower() == ".csv":
            with self.path.open(newline="") as f:
                for row in csv.DictReader(f):
                    name = row.pop("cloth", None) or row.pop("file", None)
                    if not name:
                        raise ConfigError(f"{self.path}: every row needs a 'cloth' or 'file' column")
                    self.table[Path(name).stem] = {k: v for k, v in row.items() if k and v}
        else:
            try:
                data = json.loads(self.path.read_text())
            except ValueError as exc:  # the user's tag file is a run input: a broken one stops the run
                raise ConfigError(f"{self.path}: not a JSON file ({exc})") from exc
            if isinstance(data, dict) and isinstance(data.get("data"), list):
                for elem in data["data"]:
                    tags = {t["tag_name"]: t["tag_category"] for t in elem.get("tag_info", [])
                            if t.get("tag_category") is not None}
                    self.table[Path(elem["file_name"]).stem] = tags
            elif isinstance(data, dict):
                self.table = {Path(k).stem: {tk: str(tv) for tk, tv in v.items()} for k, v in data.items()}
            else:
                raise ConfigError(f"{self.path}: expected a JSON object")

    def __call__(self, cloth_id: str, cloth_mask=None, parse=None, category=None, cloth_rgb=None) -> GarmentTags:
        self.setup()
        row = self.table.get(cloth_id)
        if row is None:
            raise InputError(f"garment {cloth_id!r} is not in {self.path.name}")
        tags = dict(row)
        if "sleeve" in tags and "sleeveLength" not in tags:
            cls = _normalise_sleeve(tags.pop("sleeve"))
            if cls:
                tags["sleeveLength"] = IDM_SLEEVE_WORDS[cls]
        item_class = row.get("item_class") or (category if category in ITEMS else None)
        tags.pop("item_class", None)
        sleeve = _normalise_sleeve(tags.get("sleeveLength"))
        return GarmentTags(tags, f"{self.NAME}:{self.path.name}", self.APPROXIMATE, sleeve,
                           item_class if item_class in ITEMS else None)


CLIP_PROMPTS = {
    "sleeve": {"none": "a photo of a sleeveless garment", "short": "a photo of a garment with short sleeves",
               "long": "a photo of a garment with long sleeves"},
    "item": {"upper_body": "a photo of a top", "lower_body": "a photo of trousers or a skirt",
             "dresses": "a photo of a dress"},
}


class ClipTagger(Backend):
    """Zero-shot CLIP tags from user-supplied weights: a local folder loadable by ``CLIPModel.from_pretrained``.

    ``local_files_only=True`` makes a missing folder an error instead of a hub download. The tokenizer/processor
    come from the same folder.
    """

    NAME = "garment-tags-clip"
    KIND = "caption"
    APPROXIMATE = True
    LICENCE = "as the user's CLIP weights"
    Config = ClipConfig

    def __init__(self, config: ClipConfig, weights_dir: str | Path | None = None, *, model: Any = None,
                 processor: Any = None):
        super().__init__(config, weights_dir)
        self.path = Path(config.path)
        self.model, self.processor = model, processor
        if model is None and not self.path.is_dir():  # checked when the pipeline is built
            raise ConfigError(f"CLIP weights folder {self.path} does not exist (weights are never downloaded)")

    def setup(self) -> None:
        if self.model is not None:
            return
        # transformers is heavy: imported only by a pipeline that uses this back-end, in the worker
        from transformers import CLIPModel, CLIPProcessor

        self.model = CLIPModel.from_pretrained(self.path, local_files_only=True).eval()
        self.processor = CLIPProcessor.from_pretrained(self.path, local_files_only=True)

    def scores(self, rgb: np.ndarray, prompts: dict[str, str]) -> dict[str, float]:
        import torch  # with transformers, only for this back-end

        self.setup()
        inputs = self.processor(text=list(prompts.values()), images=[rgb], return_tensors="pt", padding=True)
        with torch.no_grad():
            logits = self.model(**inputs).logits_per_image[0]
        probs = logits.softmax(-1).tolist()
        return dict(zip(prompts, probs, strict=True))

    def __call__(self, cloth_id: str, cloth_mask=None, parse=None, category=None, cloth_rgb=None) -> GarmentTags:
        if cloth_rgb is None:
            raise InputError("CLIP tagging needs the garment photo")
        item_p = self.scores(cloth_rgb, CLIP_PROMPTS["item"])
        item = category if category in ITEMS else max(item_p, key=item_p.get)
        tags = {"item": ITEM_WORDS[item]}
        sleeve = None
        ev: dict[str, Any] = {"item_probs": {k: round(v, 4) for k, v in item_p.items()}}
        if item != "lower_body":
            sp = self.scores(cloth_rgb, CLIP_PROMPTS["sleeve"])
            sleeve = max(sp, key=sp.get)
            tags["sleeveLength"] = IDM_SLEEVE_WORDS[sleeve]
            ev["sleeve_probs"] = {k: round(v, 4) for k, v in sp.items()}
        return GarmentTags(tags, f"{self.NAME}:{self.path.name}", self.APPROXIMATE, sleeve, item, ev)
