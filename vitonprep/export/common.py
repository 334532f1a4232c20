"""What every export format shares: reading only sound samples, naming files safely, writing each sample whole.

An export reads untrusted shards. :class:`Export` reads them through validate's own checks
(``vitonprep.validate.checked_samples``: the shard's stats file and manifest entry first, then every sample
through the strict decoders) and hands a format only the samples validate finds no error in; every other one
is refused and recorded with shard, key and reason. Samples the quality checks flagged (meta.json ``quality``)
are left out unless ``keep_flagged``, in every format alike, and listed apart from the refused ones; samples
never checked are exported (docs/exports.md). Every path named from data (keys, ids, split, category)
is made by ``vitonprep.safepaths.safe_path``, and a sample's files are all written or none is.

Pair lists follow one rule in every format (:meth:`Export.list_pair`, :meth:`Export.write_pair_lists`): a paired
sample (the person wears the garment) is listed in its split's paired list, the one trainers read; an unpaired
sample (the person wears another garment) is a try-on input, never a training target, and is listed only in its
split's unpaired list. Both lists of a split with garment samples are written, an empty one included.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
from PIL import Image

from vitonprep import codecs
from vitonprep.safepaths import safe_path, write_atomic
from vitonprep.schema import FIELDS_BY_MEMBER
from vitonprep.shards import Sample, list_shards
from vitonprep.validate import checked_samples, read_listing, read_quality

logger = logging.getLogger(__name__)

MASK_JPEG_QUALITY = 75  # cloth-mask in VITON-HD is an L JPEG at PIL's default quality


@dataclass(frozen=True)
class Refusal:
    """A sample (``key``) or a whole shard (``key`` None) that was not exported, and why."""

    shard: str
    key: str | None
    reason: str


@dataclass
class ExportReport:
    nsamples: int = 0
    #: files of the export in OUT (written now or already there with the same bytes), lists included
    nfiles: int = 0
    pairs: dict[str, list[str]] = field(default_factory=dict)
    #: per-format notes (e.g. how many captions came from the shards vs. the tagger at export time)
    notes: dict[str, Any] = field(default_factory=dict)
    refused: list[Refusal] = field(default_factory=list)
    #: sound samples the quality checks flagged, left out (``keep_flagged`` False); ``reason`` names the checks
    flagged: list[Refusal] = field(default_factory=list)
    #: exported samples by meta.json ``pair``: paired, unpaired, person_only (no garment: in no list)
    pairing: dict[str, int] = field(default_factory=dict)
    #: pairing -> the lists (paths relative to OUT) that hold its lines
    lists: dict[str, list[str]] = field(default_factory=dict)
    #: ids renamed to the format's own names (DressCode's numbers) and the file mapping them back, relative to OUT
    renamed: int = 0
    id_map: str | None = None


def pair_list_template(split: str, pairing: str) -> str:
    """The list of a split's samples of one pairing, by VITON-HD's and DressCode's names (``{split}`` is filled in
    from data): ``train_pairs.txt`` is the list trainers read, so an unpaired line never goes there; the others are
    ``{split}_pairs_unpaired.txt`` and DressCode's ``test_pairs_paired.txt``."""
    if pairing == "unpaired":
        return "{split}_pairs_unpaired.txt"
    return "{split}_pairs.txt" if split == "train" else "{split}_pairs_paired.txt"


class Export:
    """One export run from ``shard_dir`` into ``out``; formats call :meth:`samples`, :meth:`write_sample`,
    :meth:`write_extra` and, at the end, :meth:`finish`."""

    def __init__(self, shard_dir: Path, out: Path, progress: Callable[[str], None] | None = None,
                 keep_flagged: bool = False):
        self.shard_dir, self.out, self.progress = Path(shard_dir), Path(out), progress
        self.keep_flagged = keep_flagged
        self.report = ExportReport()
        self.files: set[Path] = set()
        self.seen: dict[str, str] = {}
        self.pair_lines: dict[tuple[str, str, str], list[str]] = {}

    def refuse(self, shard: str, key: str | None, reason: str) -> None:
        self.report.refused.append(Refusal(shard, key, reason))
        logger.info("not exported: %s %s: %s", shard, key or "(whole shard)", reason)

    def samples(self) -> Iterator[tuple[Sample, dict[str, Any], str]]:
        """(sample, its meta.json, shard name) for every sample validate finds no error in and the quality checks
        did not flag (unless ``keep_flagged``); a shard whose stats or manifest entry do not match its tar is
        refused before any of it is read."""
        manifest, listed, problem = read_listing(self.shard_dir)
        if problem and manifest is not None:
            raise ValueError(problem)
        for tar_path in list_shards(self.shard_dir):
            name = tar_path.name
            checks = checked_samples(tar_path, listed.get(name), manifest is not None)
            _, before = next(checks)
            errors = [i.message for i in before if i.level == "error"]
            if errors:
                checks.close()
                self.refuse(name, None, _reason(errors))
                continue
            for sample, issues in checks:
                errors = [i.message for i in issues if i.level == "error"]
                if sample is None:  # what only the whole read shows (a truncated or crafted tar)
                    if errors:
                        self.refuse(name, None, _reason(errors))
                    continue
                if sample.key in self.seen:
                    errors.append(f"key {sample.key!r} already seen in {self.seen[sample.key]}")
                if errors:
                    self.refuse(name, sample.key, _reason(errors))
                    continue
                self.seen[sample.key] = name
                meta = codecs.decode_json(sample.members["meta.json"])
                quality = read_quality(meta)  # a malformed field is one of validate's errors: refused above
                if quality.state == "flagged" and not self.keep_flagged:
                    self.report.flagged.append(Refusal(name, sample.key, "flagged by " + ", ".join(quality.checks)))
                    logger.info("not exported (flagged): %s %s: %s", name, sample.key, ", ".join(quality.checks))
                    continue
                yield sample, meta, name

    def path(self, template: str, **names: str) -> Path:
        """A path in OUT named from data (see ``safe_path``)."""
        return safe_path(self.out, template, **names)

    def write_sample(self, sample: Sample, shard: str, build: Callable[[], dict[Path, bytes]]) -> bool:
        """Write the files ``build()`` plans for one sample, all or none.

        The sample is refused (nothing written) when planning fails on its data (an unsafe name, an
        undecodable member) or when a file is already in OUT with other bytes (person maps repeat across
        unpaired samples and must agree).
        """
        try:
            files = build()
        except (ValueError, KeyError, TypeError) as exc:  # UnsafeName and DecodeError are ValueErrors
            self.refuse(shard, sample.key, str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}")
            return False
        for path, data in files.items():
            if (path.exists() or path.is_symlink()) and not _same(path, data):
                self.refuse(shard, sample.key, f"{path.relative_to(self.out)} already exists with other content "
                                               "(an earlier export, or two samples that disagree on it)")
                return False
        for path, data in files.items():
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(path, data)
            self.files.add(path)
        self.accept(sample.key)
        return True

    def accept(self, key: str) -> None:
        self.report.nsamples += 1
        if self.progress:
            self.progress(key)

    def write_extra(self, template: str, data: bytes, **names: str) -> Path:
        """A file of the export as a whole (pair lists, indexes), replaced on every run."""
        path = self.path(template, **names)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data)
        self.files.add(path)
        return path

    def list_pair(self, meta: dict[str, Any], line: str, folder: str = "") -> None:
        """Count an exported sample by its pairing and keep its ``line`` for its split's list of that pairing (under
        ``folder``, e.g. DressCode's category); a person-only sample is counted and listed nowhere."""
        pairing = meta["pair"]
        self.report.pairing[pairing] = self.report.pairing.get(pairing, 0) + 1
        if pairing in ("paired", "unpaired"):
            self.pair_lines.setdefault((folder, meta["split"], pairing), []).append(line)

    def write_pair_lists(self, template: Callable[[str, str], str] = pair_list_template,
                         encode: Callable[[list[str]], bytes] | None = None) -> None:
        """Write, for every (folder, split) holding a garment sample, its paired and its unpaired list (``template
        (split, pairing)``, in the folder; ``encode``: sorted unique lines, one per line by default), empty or not: an
        empty file says there is none where a reader looks for it."""
        encode = encode or lines_bytes
        for folder, split in sorted({(f, s) for f, s, _ in self.pair_lines}):
            for pairing in ("paired", "unpaired"):
                lines = sorted(set(self.pair_lines.get((folder, split, pairing), [])))
                names = {"split": split, **({"folder": folder} if folder else {})}
                path = self.write_extra(("{folder}/" if folder else "") + template(split, pairing), encode(lines),
                                        **names)
                rel = path.relative_to(self.out).as_posix()
                self.report.pairs[rel] = lines
                self.report.lists.setdefault(pairing, []).append(rel)

    def finish(self) -> ExportReport:
        self.report.nfiles = len(self.files)
        return self.report


def _reason(messages: list[str]) -> str:
    return messages[0] + (f" (and {len(messages) - 1} more)" if len(messages) > 1 else "")


def _same(path: Path, data: bytes) -> bool:
    try:
        return path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False


def decoded(sample: Sample, name: str) -> Any:
    """Decode member ``name`` (field name, e.g. ``agn_mask``) with the shard contract's strict decoder; None if
    the sample does not have it."""
    for member, f in FIELDS_BY_MEMBER.items():
        if f.name == name:
            data = sample.members.get(member)
            return None if data is None else codecs.decode_field(f, data, sample.key)
    raise KeyError(name)


def _mask_jpeg(mask_png: bytes) -> bytes:
    mask = codecs.decode_mask(mask_png)
    buf = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8) * 255, "L").save(buf, format="JPEG", quality=MASK_JPEG_QUALITY)
    return buf.getvalue()


def png_bytes(arr: np.ndarray, mode: str, palette: list[int] | None = None) -> bytes:
    img = Image.fromarray(arr, mode)
    if palette is not None:
        img.putpalette(palette)
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=codecs.PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def jpeg_bytes(rgb: np.ndarray, quality: int = 95) -> bytes:
    return codecs.encode_jpeg(np.ascontiguousarray(rgb), quality)


def json_bytes(obj: Any) -> bytes:
    return json.dumps(obj).encode("utf-8")


def lines_bytes(lines: list[str]) -> bytes:
    return "".join(f"{line}\n" for line in sorted(set(lines))).encode()
