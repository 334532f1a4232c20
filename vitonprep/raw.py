"""Planning a build from a raw folder: which person photo goes with which garment photo.

Layouts: ``raw/person/`` + ``raw/cloth/`` (pairs from ``raw/pairs.txt`` or a given pairs file, else from shared
file stems), or a flat folder of person photos (person-only samples). Plans are sorted, so reruns make the same
shards and resume cleanly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from vitonprep.errors import ConfigError
from vitonprep.photos import PHOTO_EXTENSIONS, key_from_name
from vitonprep.schema import sample_key

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RawItem:
    key: str
    person: str  # absolute path
    cloth: str | None
    pair: str  # paired | unpaired | person_only
    root: str


@dataclass(frozen=True)
class RawPlan:
    items: tuple[RawItem, ...]
    unused_garments: tuple[str, ...]
    layout: str


def _photos(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in PHOTO_EXTENSIONS)


def plan_raw(root: Path, pairs_file: Path | None = None) -> RawPlan:
    if not root.is_dir():
        raise ConfigError(f"input folder {root} does not exist")
    person_dir, cloth_dir = root / "person", root / "cloth"
    if not person_dir.is_dir():
        if cloth_dir.is_dir():
            raise ConfigError(f"{root} has cloth/ but no person/ folder")
        persons = _photos(root)
        if not persons:
            raise ConfigError(f"no photos ({', '.join(PHOTO_EXTENSIONS)}) in {root}")
        items = tuple(RawItem(key_from_name(p), str(p), None, "person_only", str(root)) for p in persons)
        return RawPlan(_unique(items), (), "flat")
    persons = _photos(person_dir)
    cloths = _photos(cloth_dir) if cloth_dir.is_dir() else []
    if not persons:
        raise ConfigError(f"no photos in {person_dir}")
    pairs_file = pairs_file or (root / "pairs.txt" if (root / "pairs.txt").is_file() else None)
    items: list[RawItem] = []
    used: set[str] = set()
    if pairs_file is not None:
        if not pairs_file.is_file():
            raise ConfigError(f"pairs file {pairs_file} does not exist")
        by_name_p = {p.name: p for p in persons}
        by_name_c = {c.name: c for c in cloths}
        paired_persons = set()
        for n, line in enumerate(pairs_file.read_text(encoding="utf-8").splitlines(), 1):
            parts = line.split()
            if not parts or parts[0].startswith("#"):
                continue
            if len(parts) != 2:
                raise ConfigError(f"{pairs_file}:{n}: expected 'person_file cloth_file', got {line!r}")
            p, c = by_name_p.get(parts[0]), by_name_c.get(parts[1])
            if p is None or c is None:
                missing = parts[0] if p is None else parts[1]
                raise ConfigError(f"{pairs_file}:{n}: {missing} is not in {'person/' if p is None else 'cloth/'}")
            pk, ck = key_from_name(p), key_from_name(c)
            pair = "paired" if pk == ck else "unpaired"
            items.append(RawItem(sample_key(pk, ck, pair), str(p), str(c), pair, str(root)))
            used.add(c.name)
            paired_persons.add(p.name)
        for p in persons:
            if p.name not in paired_persons:
                items.append(RawItem(key_from_name(p), str(p), None, "person_only", str(root)))
        layout = f"person/ + cloth/ + {pairs_file.name}"
    else:
        cloth_by_key = {key_from_name(c): c for c in cloths}
        for p in persons:
            k = key_from_name(p)
            c = cloth_by_key.get(k)
            if c is not None:
                used.add(c.name)
            items.append(RawItem(k, str(p), str(c) if c else None, "paired" if c else "person_only", str(root)))
        layout = "person/ + cloth/ (pairs by shared file stems)"
    unused = tuple(c.name for c in cloths if c.name not in used)
    if unused:
        logger.info("%d garment photos are not paired with any person: %s", len(unused), ", ".join(unused[:5]))
    return RawPlan(_unique(sorted(items, key=lambda i: i.key)), unused, layout)


def _unique(items) -> tuple[RawItem, ...]:
    seen: dict[str, str] = {}
    for it in items:
        if it.key in seen:
            raise ConfigError(f"two inputs map to the same sample key {it.key!r}: {seen[it.key]} and {it.person}")
        seen[it.key] = it.person
    return tuple(items)
