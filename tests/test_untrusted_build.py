"""Untrusted inputs to `vitonprep build` / `convert`: nothing deletes or writes into an input, a bad photo is one
recorded failure, a dead worker is retried, a killed build leaves no process behind, one build at a time per OUT,
and every refusal is one line with an exit code. The adversarial inputs are generated here, small."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import uuid
import zlib
from pathlib import Path

import pytest
from helpers.faults import arm_exit_once
from typer.testing import CliRunner

import vitonprep.build
import vitonprep.build_worker
from vitonprep.build import BuildOptions, build_dataset
from vitonprep.build_worker import BuildWork
from vitonprep.cli import app
from vitonprep.config import load_pipeline_config
from vitonprep.raw import plan_raw
from vitonprep.shards import iter_tar_samples, list_shards

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


def _tree(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file below ``folder`` (what must not change)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _png_1bit(path: Path, w: int, h: int) -> None:
    """A valid 1-bit PNG of ``w`` x ``h`` zeros: 30000x30000 deflates to ~110 KB (a decompression bomb)."""
    row = b"\x00" * (1 + (w + 7) // 8)
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(h)) + comp.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


@pytest.fixture
def raw(tmp_path, data_dir) -> Path:
    """person/ + cloth/ + pairs.txt with two real pairs."""
    root = tmp_path / "raw"
    (root / "person").mkdir(parents=True)
    (root / "cloth").mkdir()
    for p, c in (("00034_00.jpg", "04469_00.jpg"), ("00035_00.jpg", "04743_00.jpg")):
        shutil.copy(data_dir / "samples/person" / p, root / "person" / p)
        shutil.copy(data_dir / "samples/cloth" / c, root / "cloth" / c)
    (root / "pairs.txt").write_text("00034_00.jpg 04469_00.jpg\n00035_00.jpg 04743_00.jpg\n")
    return root


# ---------------------------------------------------------------- 3. outputs never delete or fill an input

@pytest.mark.parametrize("case", ["out_is_raw", "out_contains_raw", "out_inside_raw", "export_is_raw",
                                  "export_contains_raw", "out_is_export", "out_holds_weights"])
def test_overwrite_never_deletes_an_input(raw, tmp_path, case):
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "model.pth").write_bytes(b"weights")
    args = {
        "out_is_raw": [str(raw), str(raw)],
        "out_contains_raw": [str(raw), str(tmp_path)],
        "out_inside_raw": [str(raw), str(raw / "person" / "out")],
        "export_is_raw": [str(raw), str(tmp_path / "o"), "--export-vitonhd", str(raw)],
        "export_contains_raw": [str(raw), str(tmp_path / "o"), "--export-vitonhd", str(tmp_path)],
        "out_is_export": [str(raw), str(tmp_path / "o"), "--export-vitonhd", str(tmp_path / "o")],
        "out_holds_weights": [str(raw), str(tmp_path), "--weights-dir", str(weights)],
    }[case]
    before, before_w = _tree(raw), _tree(weights)
    result = runner.invoke(app, ["build", *args, "--overwrite"])
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and "choose a separate folder" in result.output
    assert "Traceback" not in result.output
    assert _tree(raw) == before and _tree(weights) == before_w


def test_out_equal_to_raw_is_refused_without_overwrite_too(raw):
    before = _tree(raw)
    result = runner.invoke(app, ["build", str(raw), str(raw)])
    assert result.exit_code == 2 and "equals RAW" in result.output
    assert _tree(raw) == before


def test_overwrite_refuses_a_folder_vitonprep_did_not_write(raw, tmp_path):
    mine = tmp_path / "documents"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    result = runner.invoke(app, ["build", str(raw), str(mine), "--overwrite"])
    assert result.exit_code == 2 and "did not write" in result.output
    assert (mine / "thesis.tex").read_text() == "years of work"
    result = runner.invoke(app, ["build", str(raw), str(tmp_path / "o"), "--export-vitonhd", str(mine),
                                 "--overwrite"])
    assert result.exit_code == 2 and (mine / "thesis.tex").is_file()


def test_convert_overwrite_never_deletes_the_dataset(tmp_path, data_dir):
    root = tmp_path / "vitonhd"
    shutil.copytree(data_dir / "vitonhd-official", root)
    before = _tree(root)
    for out in (root, root / "image", tmp_path):
        result = runner.invoke(app, ["convert", "vitonhd", str(root), str(out), "--overwrite"])
        assert result.exit_code == 2 and "ROOT" in result.output, result.output
    assert _tree(root) == before


# ---------------------------------------------------------------- 4 + 5: bombs, huge photos, dead workers

@pytest.fixture(scope="module")
def thirty(tmp_path_factory, data_dir) -> Path:
    """A flat folder: 30 good person photos (the 5 bundled persons, 6 names each), a 30000x30000 decompression
    bomb and a 12000x12000 PNG under Pillow's own limit."""
    root = tmp_path_factory.mktemp("thirty") / "raw"
    root.mkdir()
    persons = sorted((data_dir / "samples/person").glob("*.jpg"))
    for i in range(30):
        shutil.copy(persons[i % len(persons)], root / f"p{i:02d}.jpg")
    _png_1bit(root / "bomb.png", 30000, 30000)
    _png_1bit(root / "huge.png", 12000, 12000)
    assert (root / "bomb.png").stat().st_size < 200_000
    return root


def _stats_and_tars(out: Path) -> dict[str, str]:
    return {k: v for k, v in _tree(out).items() if k.endswith((".tar", "_stats.json"))}


def test_bomb_huge_photo_and_killed_worker_among_30_good_photos(thirty, tmp_path, monkeypatch):
    """The issue's acceptance case: 30 good samples, the two bad photos recorded with their reason, the worker
    killed mid-shard retried, and a rerun that changes nothing."""
    out = tmp_path / "out"
    fault = tmp_path / "fault-once"
    arm_exit_once(monkeypatch, fault)  # the first shard task to take it dies with os._exit (tests/helpers/faults.py)
    cfg = load_pipeline_config("default", {"samples_per_shard": 4})
    report = build_dataset(cfg, thirty, out, BuildOptions(workers=2))
    assert not fault.exists(), "the fault did not fire"
    assert report.failed_shards == {}
    assert report.nsamples == 30
    keys = sorted(s.key for tar in list_shards(out) for s in iter_tar_samples(tar))
    assert keys == [f"p{i:02d}" for i in range(30)]
    reasons = {Path(f.source).name: f.reason for f in report.failures}
    assert set(reasons) == {"bomb.png", "huge.png"}
    assert "decompression bomb" in reasons["bomb.png"] and "900000000 pixels" in reasons["bomb.png"]
    assert "pixel budget" in reasons["huge.png"] and "12000x12000" in reasons["huge.png"]
    before = _stats_and_tars(out)
    again = build_dataset(cfg, thirty, out, BuildOptions(workers=2))
    assert again.skipped_shards == again.nshards and again.nsamples == 30
    assert _stats_and_tars(out) == before


def test_a_shard_that_keeps_failing_is_reported_and_the_rest_is_built(raw, tmp_path, monkeypatch):
    """A worker that dies on every attempt: its shard is given up after the retries, the others are made, and the
    CLI names the shard and exits 1 (a rerun would retry it)."""
    monkeypatch.setattr(vitonprep.build, "BuildWork", DiesOnShard0)
    result = runner.invoke(app, ["build", str(raw), str(tmp_path / "o"), "--samples-per-shard", "1", "--sheet",
                                 "0", "--max-shard-retry", "1", "-j", "1"])  # in this process: the patch holds
    assert result.exit_code == 1, result.output
    assert "shard 0 was not made" in result.output and "simulated crash in shard 0" in result.output
    assert [p.name for p in list_shards(tmp_path / "o")] == ["00001.tar"]


class DiesOnShard0(BuildWork):
    """The build's work, except that shard 0 raises on every attempt (the in-process path runs it here)."""

    def __call__(self):
        make = super().__call__()

        def work(task):
            if task.index == 0:
                raise RuntimeError("simulated crash in shard 0")
            return make(task)

        return work


def _tagged_pids(tag: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if tag.encode() in (proc / "environ").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killing_the_build_kills_its_workers(thirty, tmp_path):
    """SIGKILL of the build's main process (no clean-up runs) takes the forkserver and the workers with it."""
    tag = f"VITONPREP_TEST_TAG={uuid.uuid4().hex}"
    env = {**os.environ, tag.split("=")[0]: tag.split("=")[1]}
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", "from vitonprep.entry import main; main()", "build",
                             str(thirty), str(out), "-j", "2", "--samples-per-shard", "2", "--sheet", "0"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob("*_stats.json")):  # workers are running once a shard is done
            assert proc.poll() is None and time.monotonic() < deadline, "the build did not start"
            time.sleep(0.2)
        assert len([p for p in _tagged_pids(tag) if p != proc.pid]) >= 2  # forkserver + workers
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 15
        while _tagged_pids(tag) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _tagged_pids(tag) == [], "processes of the killed build live on"
        made = sorted(out.glob("*_stats.json"))
        time.sleep(2)
        assert sorted(out.glob("*_stats.json")) == made  # nobody writes shards any more
    finally:
        for pid in _tagged_pids(tag):
            os.kill(pid, signal.SIGKILL)
    # the partial output resumes to the complete build
    result = runner.invoke(app, ["build", str(thirty), str(out), "--samples-per-shard", "2", "--sheet", "0"])
    assert result.exit_code == 0, result.output
    assert sum(1 for tar in list_shards(out) for _ in iter_tar_samples(tar)) == 30


def test_concurrent_builds_into_one_out_are_refused(raw, tmp_path):
    """Another process holding OUT's lock: the build is refused at once; after that process is killed the lock is
    gone with it (no stale lock) and the build runs."""
    out = tmp_path / "o"
    holder = subprocess.Popen([sys.executable, "-c",
                               "import sys, time\nfrom vitonprep.outdir import output_lock\n"
                               f"with output_lock({str(out)!r}):\n    print('held', flush=True)\n    time.sleep(120)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        result = runner.invoke(app, ["build", str(raw), str(out), "--sheet", "0"])
        assert result.exit_code == 2 and f"(pid {holder.pid})" in result.output, result.output
        assert not list(out.glob("*.tar"))
        result = runner.invoke(app, ["build", str(raw), str(out), "--sheet", "0", "--overwrite"])
        assert result.exit_code == 2 and "another vitonprep process" in result.output
    finally:
        holder.kill()
        holder.wait()
    result = runner.invoke(app, ["build", str(raw), str(out), "--sheet", "0"])
    assert result.exit_code == 0, result.output


# ---------------------------------------------------------------- 8: one line, markup shown, --verbose

def test_errors_are_one_line_with_markup_shown_and_verbose_shows_the_traceback(raw, tmp_path, monkeypatch):
    result = runner.invoke(app, ["build", str(tmp_path / "raw[bold]x"), str(tmp_path / "o")])
    assert result.exit_code == 2 and "raw[bold]x" in result.output
    help_text = runner.invoke(app, ["build", "--help"], terminal_width=200).output
    assert "'vitonprep[ray]'" in help_text

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "o/00000.tar.partial"))

    monkeypatch.setattr(vitonprep.build_worker, "write_shard", disk_full)  # in this process: -j 1
    result = runner.invoke(app, ["build", str(raw), str(tmp_path / "o"), "--sheet", "0", "-j", "1"])
    assert result.exit_code == 1, result.output
    assert "no space left on the device" in result.output and "00000.tar.partial" in result.output
    assert "Traceback" not in result.output and "--verbose" in result.output
    result = runner.invoke(app, ["--verbose", "build", str(raw), str(tmp_path / "o"), "--sheet", "0", "-j", "1"])
    assert result.exit_code == 1 and "Traceback" in result.output and "disk_full" in result.output


# ---------------------------------------------------------------- 9: folders and pairs files as people keep them

def test_unusable_files_are_recorded_not_skipped_silently(raw, tmp_path):
    person = raw / "person"
    _png_1bit(person / "anim.gif", 100, 100)  # any bytes: the name is what is judged here
    (person / "scan.tiff").write_bytes(b"II*\x00")
    (person / "iphone.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic")
    (person / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (person / "folder.jpg").mkdir()
    (person / ".DS_Store").write_bytes(b"\x00")  # hidden files are not inputs
    shutil.copy(person / "00034_00.jpg", person / "00034_00.png")  # x.jpg beside x.png: one key
    plan = plan_raw(raw)
    assert [i.key for i in plan.items] == ["00034_00__04469_00", "00035_00__04743_00"]
    reasons = {Path(f.source).name: f.reason for f in plan.skipped}
    assert set(reasons) == {"anim.gif", "scan.tiff", "iphone.HEIC", "gone.jpg", "folder.jpg", "00034_00.png"}
    assert "convert it to JPEG" in reasons["anim.gif"] and "convert it to JPEG" in reasons["iphone.HEIC"]
    assert "broken symbolic link" in reasons["gone.jpg"] and "folder" in reasons["folder.jpg"]
    assert "00034_00.jpg" in reasons["00034_00.png"]
    assert all(f.stage == "plan" for f in plan.skipped)


def test_pairs_file_lines_that_cannot_be_used_are_recorded_and_the_rest_is_built(raw, tmp_path):
    shutil.copy(raw / "person/00034_00.jpg", raw / "person/my photo.jpg")
    shutil.copy(raw / "cloth/04469_00.jpg", raw / "cloth/white shirt.jpg")
    (raw / "pairs.txt").write_bytes(
        "\ufeff00034_00.jpg 04469_00.jpg\n"       # a byte-order mark from a Windows editor
        "00034_00.jpg 04469_00.jpg\n"             # the same pair again
        "00035_00.jpg missing.jpg\n"              # a file that is not there
        '"my photo.jpg" 04743_00.jpg\n'           # a name with a space, quoted
        "my photo.jpg\t04469_00.jpg\n"            # ... or tab-separated
        "my photo.jpg white shirt.jpg\n"          # ... or found by trying the split points
        "just-one-name.jpg\n".encode("utf-8"))
    plan = plan_raw(raw)
    keys = [i.key for i in plan.items]
    assert keys[0] == "00034_00__04469_00"  # the BOM is not part of the first name
    assert "00035_00" not in keys  # its only line names a missing garment: no person-only sample either
    assert not any("\ufeff" in i.key or "\ufeff" in i.person for i in plan.items)
    reasons = {f.source.rsplit(":", 1)[1]: f.reason for f in plan.skipped}
    assert set(reasons) == {"2", "3", "7"}, reasons
    assert "repeats line 1" in reasons["2"] and "missing.jpg" in reasons["3"] and "expected" in reasons["7"]
    assert sum(k.startswith("my_photo-") for k in keys) == 3  # quoted, tab-separated, split found
    assert any(k.startswith("my_photo-") and "__white_shirt-" in k for k in keys)
    result = runner.invoke(app, ["build", str(raw), str(tmp_path / "o"), "--sheet", "0"], terminal_width=250)
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "o/manifest.json").read_text())
    assert [f["reason"] for f in manifest["vitonprep"]["skipped_inputs"]] == [reasons[n] for n in ("2", "3", "7")]
    assert "missing.jpg" in result.output and "plan" in result.output
    assert runner.invoke(app, ["build", str(raw), str(tmp_path / "o2"), "--sheet", "0", "--strict"]).exit_code == 1


def test_a_pairs_file_that_is_not_utf8_is_one_clear_error(raw, tmp_path):
    (raw / "pairs.txt").write_bytes("00034_00.jpg 04469_00.jpg\nfoto_mañana.jpg 04743_00.jpg\n".encode("latin-1"))
    result = runner.invoke(app, ["build", str(raw), str(tmp_path / "o")])
    assert result.exit_code == 2 and "not UTF-8" in result.output and "line 2" in result.output, result.output
    assert "Traceback" not in result.output


# ---------------------------------------------------------------- shard-to-shard input is untrusted too

def test_build_from_crafted_input_shards_writes_nothing_outside_out(vitonhd_shards, tmp_path):
    """Input shards whose stats name a key with a path in it, and whose meta.json lies about its files: the key is
    refused before any work (exit 2), and a lying meta.json is carried as data, never used as a path."""
    src = tmp_path / "in"
    shutil.copytree(vitonhd_shards, src)
    stats = json.loads((src / "00000_stats.json").read_text())
    stats["samples"][0]["key"] = "../../evil"
    (src / "00000_stats.json").write_text(json.dumps(stats))
    before = _tree(tmp_path)
    result = runner.invoke(app, ["build", str(src), str(tmp_path / "out"), "--sheet", "0"])
    assert result.exit_code == 2 and "00000_stats.json" in result.output and "illegal sample key" in result.output
    after = _tree(tmp_path)
    assert {k for k in after if not k.startswith("out/")} == set(before)
    assert not (tmp_path.parent / "evil").exists()
