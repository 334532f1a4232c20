"""Planning a build from a raw folder: which person photo goes with which garment photo.

Layouts: ``raw/person/`` + ``raw/cloth/`` (pairs from ``raw/pairs.txt`` or a given pairs file, else from shared
file stems), or a flat folder of person photos (person-only samples). A pairs file is the whole list: only the
pairs it names are built, and a person photo it does not name is left out (counted in one log line), never made a
person-only sample. Without a pairs file, a person photo with no garment of its stem is a person-only sample. Plans
are sorted, so reruns make the same shards and resume cleanly.

Inputs that cannot be used (an unsupported file type, a broken link, a folder named like a photo, two photos with
one sample key, a pairs line naming a missing file or repeating another) are recorded as failures of the stage
"plan" with the file and the reason; the run goes on with the rest. Only what makes the whole plan meaningless (no
input folder, no photo at all, a pairs file that is not text) stops it.
"""

from __future__ import annotations

import logging
import shlex
from dataclasses import dataclass
from pathlib import Path

from vitonprep.errors import ConfigError
from vitonprep.photos import PHOTO_EXTENSIONS, key_from_name
from vitonprep.schema import sample_key
from vitonprep.shards import Failure

logger = logging.getLogger(__name__)

PLAN_STAGE = "plan"
#: image types people keep photos in that the build does not read, named in the failure so the fix is obvious
_KNOWN_UNSUPPORTED = (".gif", ".tif", ".tiff", ".heic", ".heif", ".avif", ".bmp", ".jxl", ".jp2", ".svg", ".raw",
                      ".cr2", ".nef", ".dng", ".psd")


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
    skipped: tuple[Failure, ...] = ()  # inputs left out, each with its reason (stage "plan")
    unlisted_persons: tuple[str, ...] = ()  # person photos a pairs file does not name (left out by design)


def _skip(path: Path | str, reason: str) -> Failure:
    return Failure(source=str(path), stage=PLAN_STAGE, reason=reason)


def _photos(folder: Path, ignore: tuple[Path, ...] = ()) -> tuple[list[Path], list[Failure]]:
    """The photos of ``folder`` (sorted) and a failure for every other visible entry that is not ignored."""
    photos, skipped = [], []
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or p in ignore:
            continue
        suffix = p.suffix.lower()
        if suffix in PHOTO_EXTENSIONS:
            if p.is_symlink() and not p.exists():
                skipped.append(_skip(p, "broken symbolic link (its target does not exist)"))
            elif not p.is_file():
                skipped.append(_skip(p, "a folder or special file named like a photo, not a photo"))
            else:
                photos.append(p)
        elif p.is_dir():
            continue  # sub-folders are not scanned (person/, cloth/ and unrelated folders alike)
        elif suffix in _KNOWN_UNSUPPORTED:
            skipped.append(_skip(p, f"{suffix} photos are not read; convert it to JPEG, PNG or WebP"))
        else:
            skipped.append(_skip(p, f"not a photo ({', '.join(PHOTO_EXTENSIONS)}); left out"))
    return photos, skipped


def plan_raw(root: Path, pairs_file: Path | None = None) -> RawPlan:
    if not root.is_dir():
        raise ConfigError(f"input folder {root} does not exist")
    person_dir, cloth_dir = root / "person", root / "cloth"
    if not person_dir.is_dir():
        if cloth_dir.is_dir():
            raise ConfigError(f"{root} has cloth/ but no person/ folder")
        ignore = (pairs_file,) if pairs_file is not None else ()
        persons, skipped = _photos(root, ignore + (root / "pairs.txt",))
        if not persons:
            raise ConfigError(f"no photos ({', '.join(PHOTO_EXTENSIONS)}) in {root}")
        items = [RawItem(key_from_name(p), str(p), None, "person_only", str(root)) for p in persons]
        return _finish(items, (), "flat", skipped)
    persons, skipped = _photos(person_dir)
    cloths, skipped_cloths = _photos(cloth_dir) if cloth_dir.is_dir() else ([], [])
    skipped += skipped_cloths
    if not persons:
        raise ConfigError(f"no photos in {person_dir}")
    persons, dup = _unique_stems(persons)
    skipped += dup
    pairs_file = pairs_file or (root / "pairs.txt" if (root / "pairs.txt").is_file() else None)
    items: list[RawItem] = []
    used: set[str] = set()
    unlisted: tuple[str, ...] = ()
    if pairs_file is not None:
        lines = _read_pairs(pairs_file)
        by_name_p = {p.name: p for p in persons}
        by_name_c = {c.name: c for c in cloths}
        named_persons = set()  # named by a line, usable or not (a line left out is recorded with its reason)
        seen: dict[tuple[str, str], int] = {}
        for n, line in lines:
            where = f"{pairs_file}:{n}"
            names, problem = _pair_names(line, by_name_p, by_name_c)
            if names is None:
                skipped.append(_skip(where, problem))
                continue
            named_persons.add(names[0])
            if names in seen:
                skipped.append(_skip(where, f"repeats line {seen[names]} ({names[0]} {names[1]}); used once"))
                continue
            seen[names] = n
            p, c = by_name_p.get(names[0]), by_name_c.get(names[1])
            if p is None or c is None:
                missing, folder = (names[0], "person/") if p is None else (names[1], "cloth/")
                skipped.append(_skip(where, f"{missing} is not a usable photo in {folder}; pair left out"))
                continue
            pk, ck = key_from_name(p), key_from_name(c)
            pair = "paired" if pk == ck else "unpaired"
            items.append(RawItem(sample_key(pk, ck, pair), str(p), str(c), pair, str(root)))
            used.add(c.name)
        unlisted = tuple(p.name for p in persons if p.name not in named_persons)
        if unlisted:
            logger.warning("%d person photos not in %s were left out: %s", len(unlisted), pairs_file.name,
                           _some(unlisted))
        if not items:
            for f in skipped:
                logger.warning("left out %s: %s", f.source, f.reason)
            what = f"names no usable pair ({len(lines)} lines, reasons above)" if lines else "lists no pair"
            raise ConfigError(f"pairs file {pairs_file} {what}; fix it, or build without it (photos are then "
                              "paired by file stem)")
        layout = f"person/ + cloth/ + {pairs_file.name}"
    else:
        cloths_unique, dup = _unique_stems(cloths)
        skipped += dup
        cloth_by_key = {key_from_name(c): c for c in cloths_unique}
        for p in persons:
            k = key_from_name(p)
            c = cloth_by_key.get(k)
            if c is not None:
                used.add(c.name)
            items.append(RawItem(k, str(p), str(c) if c else None, "paired" if c else "person_only", str(root)))
        layout = "person/ + cloth/ (pairs by shared file stems)"
    unused = tuple(c.name for c in cloths if c.name not in used)
    if unused:
        logger.info("%d garment photos are not paired with any person: %s", len(unused), _some(unused))
    return _finish(items, unused, layout, skipped, unlisted)


def _some(names: tuple[str, ...], n: int = 5) -> str:
    return ", ".join(names[:n]) + (", ..." if len(names) > n else "")


def _read_pairs(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of the non-blank, non-comment lines. A byte-order mark is dropped; a file that is not
    UTF-8 text stops the build (every line of it is suspect), naming the line and the byte."""
    if not path.is_file():
        raise ConfigError(f"pairs file {path} does not exist")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(f"pairs file {path} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); "
                          "save it as UTF-8") from None
    lines = []
    for n, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            lines.append((n, stripped))
    return lines


def _pair_names(line: str, persons: dict[str, Path], cloths: dict[str, Path]) -> tuple[tuple[str, str] | None, str]:
    """The two file names of a pairs line, or (None, why not).

    Lines are 'person_file cloth_file'. Names with spaces are written in quotes ("my photo.jpg" cloth.jpg) or
    separated by a tab; an unquoted line with more than two words is read at the one split where both names are
    files of person/ and cloth/."""
    if "\t" in line:
        parts = [p.strip() for p in line.split("\t") if p.strip()]
    elif '"' in line or "'" in line:
        try:
            parts = shlex.split(line)
        except ValueError as exc:
            return None, f"cannot read {line!r}: {exc}"
    else:
        parts = line.split()
        if len(parts) > 2:
            splits = [(" ".join(parts[:i]), " ".join(parts[i:])) for i in range(1, len(parts))]
            found = [s for s in splits if s[0] in persons and s[1] in cloths]
            if len(found) == 1:
                return found[0], ""
            return None, (f"expected 'person_file cloth_file', got {line!r} (quote names that hold spaces)"
                          if not found else f"{line!r} can be split in {len(found)} ways; quote the names")
    if len(parts) != 2:
        return None, f"expected 'person_file cloth_file', got {line!r}"
    return (parts[0], parts[1]), ""


def _unique_stems(photos: list[Path]) -> tuple[list[Path], list[Failure]]:
    """Photos whose names give the same sample key (x.jpg beside x.png): the first in name order is used, the
    others are recorded."""
    kept: dict[str, Path] = {}
    skipped = []
    for p in photos:
        k = key_from_name(p)
        if k in kept:
            skipped.append(_skip(p, f"gives the same sample key {k!r} as {kept[k].name}; rename one to use both"))
        else:
            kept[k] = p
    return list(kept.values()), skipped


def _finish(items: list[RawItem], unused: tuple[str, ...], layout: str, skipped: list[Failure],
            unlisted: tuple[str, ...] = ()) -> RawPlan:
    unique: dict[str, RawItem] = {}
    for it in sorted(items, key=lambda i: i.key):
        if it.key in unique:
            skipped.append(_skip(it.person, f"gives the same sample key {it.key!r} as {unique[it.key].person}; "
                                            "left out"))
        else:
            unique[it.key] = it
    for f in skipped:
        logger.warning("left out %s: %s", f.source, f.reason)
    return RawPlan(tuple(unique.values()), unused, layout, tuple(skipped), unlisted)
