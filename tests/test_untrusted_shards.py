"""Crafted shards against every command that reads shards (issue 15, items 2, 6, 7).

The corpus is generated here from the converted official sample (``vitonhd_shards``): damaged content rewritten
with fresh stats and manifest (so only the content is wrong), tars crafted member by member (names with ``..``,
absolute names, links and devices, then sealed with matching stats), lying manifests, a missing stats file, a
truncated tar, a corrupt PNG, a label out of range, a duplicate key and a pickle member. Every command runs
through the CLI; each case asserts its exit code and message, that no traceback escaped, that nothing was
written outside the command's OUT, and that no code ran (a pickle member would create a sentinel file).
"""

from __future__ import annotations

import hashlib
import io
import json
import pathlib
import pickle
import re
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from vitonprep.cli import app
from vitonprep.export import EXPORTERS
from vitonprep.schema import split_member
from vitonprep.shards import Sample, iter_tar_samples, list_shards, write_manifest, write_shard

runner = CliRunner()
ESCAPE = "../../../evil"  # from OUT/{split}/{folder}/ this lands beside OUT, still inside tmp_path


def _samples(src: Path) -> list[list[Sample]]:
    return [[Sample(s.key, dict(s.members)) for s in iter_tar_samples(t)] for t in list_shards(src)]


def _write(dst: Path, shards: list[list[Sample]]) -> None:
    for i, samples in enumerate(shards):
        write_shard(dst, i, samples)
    write_manifest(dst, "crafted", {})


def _meta(sample: Sample, **change) -> None:
    meta = json.loads(sample.members["meta.json"])
    meta.update(change)
    sample.members["meta.json"] = json.dumps(meta).encode()


def _seal(dst: Path) -> None:
    """Stats files and manifest that match the tars as they are, so only what was crafted inside is wrong."""
    for tar_path in sorted(dst.glob("*.tar")):
        data = tar_path.read_bytes()
        records: dict[str, dict[str, str]] = {}
        with tarfile.open(tar_path) as tar:
            for m in tar.getmembers():
                if m.isfile():
                    key, suffix = split_member(m.name)
                    records.setdefault(key, {})[suffix] = hashlib.sha256(tar.extractfile(m).read()).hexdigest()
        stats = {"schema_version": 1, "shard": tar_path.name, "nsamples": len(records), "filesize": len(data),
                 "sha256": hashlib.sha256(data).hexdigest(), "md5sum": hashlib.md5(data).hexdigest(),
                 "samples": [{"key": k, "members": v} for k, v in records.items()], "failures": []}
        (dst / f"{tar_path.stem}_stats.json").write_text(json.dumps(stats))
    write_manifest(dst, "crafted", {})


def _raw_tar(path: Path, entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> None:
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for info, data in entries:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _crafted_shard0(dst: Path, shards: list[list[Sample]], name_of, extra=()) -> None:
    """Shard 0 rewritten member by member (``name_of(key, suffix)`` names each member, ``extra`` entries are
    appended after the first sample), shard 1 as made; everything sealed."""
    _write(dst, shards)
    entries = []
    for i, s in enumerate(shards[0]):
        entries += [_file(name_of(s.key, suffix), data) for suffix, data in s.members.items()]
        if i == 0:
            entries += list(extra)
    _raw_tar(dst / "00000.tar", entries)
    _seal(dst)


def _png_labels(value: int) -> bytes:
    lab = np.zeros((1024, 768), np.uint8)
    lab[10:20, 10:20] = value
    img = Image.fromarray(lab, "P")
    img.putpalette(list(range(256)) * 3)  # a full palette, or PIL compacts the indices on save
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


class _Touch:
    """Unpickling this creates the sentinel file: proof that code from a shard ran."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.path),)


# ----------------------------------------------------------------------------------------- the crafted corpus
# each builder gets (source shards, destination folder, sentinel path) and returns the key it damaged (or None)

def person_id_traversal(shards, dst, sentinel):
    _meta(shards[0][0], person_id=ESCAPE, cloth_id=ESCAPE + "2")
    _write(dst, shards)
    return shards[0][0].key


def split_traversal(shards, dst, sentinel):
    _meta(shards[0][0], split=ESCAPE)
    _write(dst, shards)
    return shards[0][0].key


def category_traversal(shards, dst, sentinel):
    _meta(shards[0][0], category="../../evil")
    _write(dst, shards)
    return shards[0][0].key


def member_traversal(shards, dst, sentinel):
    _crafted_shard0(dst, shards, lambda k, s: f"../../../{k}.{s}")
    return None


def absolute_member(shards, dst, sentinel):
    _crafted_shard0(dst, shards, lambda k, s: f"/abs/{k}.{s}")
    return None


def symlink_member(shards, dst, sentinel):
    link = tarfile.TarInfo(f"{shards[0][0].key}.link.jpg")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    _crafted_shard0(dst, shards, lambda k, s: f"{k}.{s}", [(link, None)])
    return None


def device_member(shards, dst, sentinel):
    dev = tarfile.TarInfo(f"{shards[0][0].key}.dev.jpg")
    dev.type, dev.devmajor, dev.devminor = tarfile.CHRTYPE, 1, 3
    _crafted_shard0(dst, shards, lambda k, s: f"{k}.{s}", [(dev, None)])
    return None


def manifest_lies_nsamples(shards, dst, sentinel):
    _write(dst, shards)
    m = json.loads((dst / "manifest.json").read_text())
    m["shardlist"][0]["nsamples"] += 1  # the total is left alone: only the shard's entry lies
    (dst / "manifest.json").write_text(json.dumps(m))
    return None


def manifest_lies_filesize(shards, dst, sentinel):
    _write(dst, shards)
    m = json.loads((dst / "manifest.json").read_text())
    m["shardlist"][0]["filesize"] += 512
    (dst / "manifest.json").write_text(json.dumps(m))
    return None


def missing_stats(shards, dst, sentinel):
    _write(dst, shards)
    (dst / "00000_stats.json").unlink()
    return None


def stats_omit_member(shards, dst, sentinel):
    _write(dst, shards)
    stats = json.loads((dst / "00000_stats.json").read_text())
    rec = next(r for r in stats["samples"] if r["key"] == shards[0][0].key)
    del rec["members"]["agn_mask.png"]  # the tar is as recorded, but one member has no recorded checksum
    (dst / "00000_stats.json").write_text(json.dumps(stats))
    return shards[0][0].key


def truncated_tar(shards, dst, sentinel):
    _write(dst, shards)
    data = (dst / "00000.tar").read_bytes()
    (dst / "00000.tar").write_bytes(data[: len(data) * 3 // 4])
    return None


def corrupt_png(shards, dst, sentinel):
    s = shards[0][0]
    s.members["agn_mask.png"] = s.members["agn_mask.png"][:200]
    _write(dst, shards)
    return s.key


def label_25(shards, dst, sentinel):
    s = shards[0][0]
    s.members["parse.png"] = _png_labels(25)
    _write(dst, shards)
    return s.key


def duplicate_key(shards, dst, sentinel):
    s = shards[0][0]
    shards[1].append(Sample(s.key, dict(s.members)))
    _write(dst, shards)
    return s.key


def pickle_member(shards, dst, sentinel):
    s = shards[0][0]
    s.members["payload.pyd"] = pickle.dumps(_Touch(sentinel))
    _write(dst, shards)
    return s.key


# case -> command -> (exit code, words the output must hold; "{key}" is the damaged key)
# commands: validate, inspect, and export (every format: the same refusal, the same count)
EXPECT = {
    person_id_traversal: {"validate": (1, ["person_id", "not a plain name"]),
                          "inspect": (1, ["{key}", "person_id"]),
                          "export": (1, ["exported 2 samples", "{key}", "person_id"])},
    split_traversal: {"validate": (1, ["{key}", "split"]), "inspect": (1, ["{key}", "split"]),
                      "export": (1, ["exported 2 samples", "{key}", "split"])},
    category_traversal: {"validate": (1, ["{key}", "category"]), "inspect": (1, ["{key}", "category"]),
                         "export": (1, ["exported 2 samples", "{key}", "category"])},
    member_traversal: {"validate": (1, ["00000.tar", "not a plain member name"]),
                       "inspect": (1, ["00000.tar", "not a plain member name"]),
                       "export": (1, ["exported 1 samples", "00000.tar", "not a plain member name"])},
    absolute_member: {"validate": (1, ["00000.tar", "not a plain member name"]),
                      "inspect": (1, ["00000.tar", "not a plain member name"]),
                      "export": (1, ["exported 1 samples", "00000.tar", "not a plain member name"])},
    symlink_member: {"validate": (1, ["00000.tar", "symbolic link"]), "inspect": (1, ["00000.tar", "symbolic link"]),
                     "export": (1, ["exported 1 samples", "00000.tar", "symbolic link"])},
    device_member: {"validate": (1, ["00000.tar", "device"]), "inspect": (1, ["00000.tar", "device"]),
                    "export": (1, ["exported 1 samples", "00000.tar", "device"])},
    manifest_lies_nsamples: {"validate": (1, ["00000.tar", "manifest.json says 3 samples"]),
                             "inspect": (0, []),
                             "export": (1, ["exported 1 samples", "00000.tar", "manifest.json says 3 samples"])},
    manifest_lies_filesize: {"validate": (1, ["00000.tar", "filesize"]), "inspect": (0, []),
                             "export": (1, ["exported 1 samples", "00000.tar", "filesize"])},
    missing_stats: {"validate": (1, ["00000.tar", "00000_stats.json"]), "inspect": (0, []),
                    "export": (1, ["exported 1 samples", "00000.tar", "00000_stats.json"])},
    stats_omit_member: {"validate": (1, ["{key}.agn_mask.png", "not recorded"]), "inspect": (0, []),
                        "export": (1, ["exported 2 samples", "{key}.agn_mask.png", "not recorded"])},
    truncated_tar: {"validate": (1, ["00000.tar", "truncated"]), "inspect": (1, ["00000.tar", "truncated"]),
                    "export": (1, ["exported 1 samples", "00000.tar", "sha256"])},
    corrupt_png: {"validate": (1, ["{key}.agn_mask.png"]), "inspect": (1, ["{key}.agn_mask.png"]),
                  "export": (1, ["exported 2 samples", "{key}.agn_mask.png"])},
    label_25: {"validate": (1, ["{key}", "[25]"]), "inspect": (1, ["{key}", "[25]"]),
               "export": (1, ["exported 2 samples", "{key}", "[25]"])},
    duplicate_key: {"validate": (1, ["{key}", "already seen"]), "inspect": (0, []),
                    "export": (1, ["exported 3 samples", "{key}", "already seen"])},
    pickle_member: {"validate": (0, ["payload.pyd"]), "inspect": (0, []), "export": (0, ["exported 3 samples"])},
}
COMMANDS = ["validate", "inspect"] + [f"export:{fmt}" for fmt in EXPORTERS] + ["export:tryondiffusion:--shards"]


def _tree(root: Path, skip: Path) -> dict[str, str]:
    """Every path under ``root`` but ``skip`` -> what it is (file digest, link target, dir)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p == skip or skip in p.parents:
            continue
        if p.is_symlink():
            out[str(p)] = "link:" + str(p.readlink())
        elif p.is_file():
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[str(p)] = "dir"
    return out


def _flat(text: str) -> str:
    return "".join(text.split())  # rich wraps long lines at the runner's 80 columns, inside words too


def _run(command: str, shards: Path, out: Path):
    if command == "validate":
        args = ["validate", str(shards), "--report", str(out / "report.json")]
    elif command == "inspect":
        args = ["inspect", str(shards), "--out", str(out / "sheet.png")]
    else:
        args = ["export", str(shards), str(out / "export"), "--format", *command.split(":")[1:]]
    out.mkdir(parents=True, exist_ok=True)
    return runner.invoke(app, args)


@pytest.fixture(scope="module")
def corpus(vitonhd_shards, tmp_path_factory) -> dict:
    """Each crafted dataset made once: case -> (shard folder, damaged key, sentinel)."""
    root = tmp_path_factory.mktemp("corpus")
    made = {}
    for case in EXPECT:
        dst = root / case.__name__
        sentinel = root / f"{case.__name__}.ran"
        key = case(_samples(vitonhd_shards), dst, sentinel)
        made[case] = (dst, key, sentinel)
    return made


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", list(EXPECT), ids=[c.__name__ for c in EXPECT])
def test_crafted_shard_is_refused_and_nothing_lands_outside_out(corpus, tmp_path, case, command):
    src, key, sentinel = corpus[case]
    box = tmp_path / "a" / "b" / "c" / "box"  # deep enough that every ESCAPE stays inside tmp_path
    shards, out = box / "shards", box / "out"
    shutil.copytree(src, shards)
    before = _tree(tmp_path, out)
    result = _run(command, shards, out)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    rc, words = EXPECT[case][command.split(":")[0]]
    text = _flat(result.output)
    assert result.exit_code == rc, result.output
    for w in words:
        assert _flat(w.replace("{key}", str(key))) in text, (w, result.output)
    assert _tree(tmp_path, out) == before  # the shard folder included: reading commands change nothing there
    assert not sentinel.exists()
    if command.startswith("export"):
        # the printed count is what was written: every file of the export, and nothing else
        m = re.search(r"exported(\d+)samples\((\d+)files", text)
        assert m, result.output
        files = [p for p in (out / "export").rglob("*") if p.is_file()] if (out / "export").exists() else []
        assert int(m.group(2)) == len(files)


# ------------------------------------------------------------------------------------ validate: item 6 in full

def test_validate_prints_its_verdict_when_the_report_cannot_be_written(vitonhd_shards, tmp_path):
    shards = tmp_path / "shards"
    shutil.copytree(vitonhd_shards, shards)
    (shards / "validation_report.json").mkdir()  # unwritable for root too (a read-only or full disk alike)
    result = runner.invoke(app, ["validate", str(shards)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    text = _flat(result.output)
    assert result.exit_code == 0 and "sound" in text
    assert _flat("warning: could not write the report") in text and "validation_report.json" in text


def test_validate_report_to_stdout(vitonhd_shards, tmp_path):
    shards = tmp_path / "shards"
    shutil.copytree(vitonhd_shards, shards)
    result = runner.invoke(app, ["validate", str(shards), "--report", "-"])
    assert result.exit_code == 0, result.output
    rep = json.loads(result.stdout)
    assert rep["ok"] and rep["nsamples"] == 3
    assert not (shards / "validation_report.json").exists()


def test_default_outputs_in_the_shard_folder_never_follow_a_planted_link(vitonhd_shards, tmp_path):
    """A crafted dataset folder that holds ``validation_report.json`` / ``contact_sheet.png`` as links to files
    elsewhere: validate and inspect replace the links, the files they pointed to are untouched."""
    shards = tmp_path / "shards"
    shutil.copytree(vitonhd_shards, shards)
    victims = {"validation_report.json": tmp_path / "victim.txt", "contact_sheet.png": tmp_path / "victim.png"}
    for name, victim in victims.items():
        victim.write_text("precious")
        (shards / name).symlink_to(victim)
    assert runner.invoke(app, ["validate", str(shards)]).exit_code == 0
    assert runner.invoke(app, ["inspect", str(shards), "-n", "1"]).exit_code == 0
    for name, victim in victims.items():
        assert victim.read_text() == "precious"
        assert not (shards / name).is_symlink() and (shards / name).stat().st_size > 0


def test_export_into_an_out_with_a_link_leading_outside_is_refused(vitonhd_shards, tmp_path):
    """A link inside OUT (left by anyone) cannot lead a data-named file out: the sample is refused."""
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / "test").mkdir(parents=True)
    (out / "test" / "image").symlink_to(elsewhere, target_is_directory=True)
    result = runner.invoke(app, ["export", str(vitonhd_shards), str(out)])
    assert result.exit_code == 1, result.output
    assert "outside" in _flat(result.output)
    assert list(elsewhere.iterdir()) == []


def test_export_conflict_refuses_the_sample_whole(vitonhd_shards, tmp_path):
    """A file already in OUT with other bytes: that sample is refused and none of its files is written."""
    from vitonprep.export import export_dataset

    out = tmp_path / "out"
    first = export_dataset("vitonhd", vitonhd_shards, out)
    assert first.nsamples == 3 and not first.refused
    victim = next((out / "test" / "agnostic-v3.2").glob("*.jpg"))
    victim.write_bytes(b"changed")
    pid = victim.stem
    for p in out.rglob(f"{pid}*"):
        if p != victim and p.is_file():
            p.unlink()
    again = export_dataset("vitonhd", vitonhd_shards, out)
    refused = {r.key for r in again.refused}
    assert again.nsamples + len(refused) == 3 and refused and all(k.startswith(pid) for k in refused)
    assert not any(p.is_file() for p in out.rglob(f"{pid}*") if p != victim)


# ------------------------------------------------------------------------------------------ the building blocks

@pytest.mark.parametrize("name", ["../evil", "..", ".", "", "/abs", "a/b", "a\\b", "a.b", "a b", "x\0y", "é",
                                  "a" * 201, 5, None, ["a"], "abc\n", "abc\r"])
def test_safe_name_refuses_anything_but_a_plain_name(name):
    from vitonprep.safepaths import UnsafeName, safe_name, safe_path

    with pytest.raises(UnsafeName, match="not a plain name"):
        safe_name(name, "person_id")
    with pytest.raises(UnsafeName):
        safe_path(Path("/tmp/out"), "{split}/image/{pid}.jpg", split="test", pid=name)


def test_safe_path_stays_inside_its_root(tmp_path):
    from vitonprep.safepaths import UnsafeName, safe_path

    root = tmp_path / "out"
    (root / "test").mkdir(parents=True)
    assert safe_path(root, "{split}/image/{pid}.jpg", split="test", pid="00006_00") == root / "test/image/00006_00.jpg"
    (root / "test" / "image").symlink_to(tmp_path, target_is_directory=True)  # a link that leads out of OUT
    with pytest.raises(UnsafeName, match="outside"):
        safe_path(root, "{split}/image/{pid}.jpg", split="test", pid="00006_00")


def _png_claiming(width: int, height: int, extra_chunk: bool) -> bytes:
    """A ~100 KB L PNG of zeros that claims ``width`` x ``height`` pixels (inflated row by row, never held)."""
    import zlib

    from vitonprep.codecs import _png_chunk

    z, row, parts = zlib.compressobj(9), bytes(width + 1), []
    for _ in range(height):
        parts.append(z.compress(row))
    parts.append(z.flush())
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    text = _png_chunk(b"tEXt", b"Comment\0crafted") if extra_chunk else b""  # PIL's path instead of ours
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + text + _png_chunk(b"IDAT", b"".join(parts)) \
        + _png_chunk(b"IEND", b"")


@pytest.mark.parametrize("extra_chunk", [False, True], ids=["fast-path", "pil-path"])
def test_decoders_refuse_a_pixel_bomb_from_its_header(extra_chunk):
    from vitonprep.codecs import MAX_PIXELS, DecodeError, decode_mask

    side = 4096  # 16.8 M pixels: over the limit, small enough to cost little where the limit is missing
    assert side * side > MAX_PIXELS
    with pytest.raises(DecodeError, match="pixel limit"):
        decode_mask(_png_claiming(side, side, extra_chunk), "k.agn_mask.png")


def test_unreadable_manifest_is_one_line_and_verbose_shows_the_traceback(vitonhd_shards, tmp_path):
    shards = tmp_path / "shards"
    shutil.copytree(vitonhd_shards, shards)
    (shards / "manifest.json").write_bytes(b"\xff not json")
    result = runner.invoke(app, ["export", str(shards), str(tmp_path / "out")])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert _flat("manifest.json is unreadable") in _flat(result.output) and "Traceback" not in result.output
    result = runner.invoke(app, ["--verbose", "export", str(shards), str(tmp_path / "out")])
    assert result.exit_code == 1 and "Traceback" in result.output
    assert not (tmp_path / "out").exists()
    rep = runner.invoke(app, ["validate", str(shards), "--report", "-"])
    assert rep.exit_code == 1 and "manifest.json is unreadable" in rep.stdout


# ------------------------------------------------------------------ build: crafted shards as a shard-to-shard input

BUILD_CASES = [person_id_traversal, member_traversal, absolute_member, symlink_member, device_member, truncated_tar,
               duplicate_key, pickle_member]


@pytest.mark.parametrize("case", BUILD_CASES, ids=[c.__name__ for c in BUILD_CASES])
def test_build_from_crafted_shards_writes_nothing_outside_out(corpus, tmp_path, case):
    """`vitonprep build SHARDS OUT` re-runs the pipeline on stored photos: a crafted input shard ends as a failed
    shard or an unsound sample (exit 1) or is carried as data, never as a path, a link or code."""
    src, key, sentinel = corpus[case]
    box = tmp_path / "a" / "b" / "c" / "box"
    shards, out = box / "shards", box / "out"
    shutil.copytree(src, shards)
    before = _tree(tmp_path, out)
    result = runner.invoke(app, ["build", str(shards), str(out), "--sheet", "0", "--max-shard-retry", "0"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    assert result.exit_code in (0, 1), result.output
    assert _tree(tmp_path, out) == before
    assert not sentinel.exists()
    assert not [p for p in out.rglob("*") if p.is_symlink()]


def test_the_documented_webdataset_recipe_runs_no_code_from_a_shard(corpus, tmp_path):
    """README's recipe, ``.decode(decode_member, pre=[], post=[])``: members the contract does not know stay bytes.
    With webdataset's default handlers behind decode_member (the recipe as it was), a ``.pyd`` member is unpickled
    and its code runs: the sentinel shows which is which."""
    import webdataset as wds

    from vitonprep.codecs import decode_member

    src, key, sentinel = corpus[pickle_member]
    urls = [str(p) for p in sorted(src.glob("*.tar"))]
    safe = list(wds.WebDataset(urls, shardshuffle=False).decode(decode_member, pre=[], post=[]))
    crafted = next(s for s in safe if s["__key__"] == key)
    assert isinstance(crafted["payload.pyd"], bytes)
    assert crafted["parse.png"].dtype.name == "uint8"  # the contract's members are still decoded
    assert not sentinel.exists()
    # the old recipe, on a copy whose payload touches a file of this test
    probe = tmp_path / "ran"
    copy = tmp_path / "copy"
    shutil.copytree(src, copy)
    shards = _samples(copy)
    for s in shards[0]:
        if s.key == key:
            s.members["payload.pyd"] = pickle.dumps(_Touch(probe))
    _write(copy, shards)
    list(wds.WebDataset(sorted(str(p) for p in copy.glob("*.tar")), shardshuffle=False).decode(decode_member))
    assert probe.exists()
