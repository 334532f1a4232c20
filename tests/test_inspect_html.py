"""inspect --html: the static report lists every sample with its overlays, escapes every text from shard data,
stays inside its folder, and renders in headless Chromium (tiles with loaded thumbnails, filters from the URL
hash, a screenshot that is not blank)."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest
from helpers.inspect_shards import PAYLOAD, samples, set_meta, with_quality
from PIL import Image
from typer.testing import CliRunner

from vitonprep.cli import app
from vitonprep.errors import ConfigError
from vitonprep.inspect.html import MARKER, write_report
from vitonprep.shards import write_manifest, write_shard

runner = CliRunner()

#: a sample key a crafted tar may carry (no dot, no slash: iter_tar_samples accepts it as a key)
EVIL_KEY = "<svg onload=document['title']='pwned'>"


def _evil_shard(src: Path, dst: Path) -> None:
    """A second shard holding one sample keyed EVIL_KEY (written by hand: our writer refuses such keys)."""
    sample = samples(src)[0]
    set_meta(sample, quality={"flags": [{"check": "hair_far", "reason": PAYLOAD}], "scores": {}},
             category="upper_body")
    with tarfile.open(dst / "00001.tar", "w") as tar:
        for suffix, data in sorted(sample.members.items()):
            info = tarfile.TarInfo(f"{EVIL_KEY}.{suffix}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.fixture(scope="module")
def report(vitonhd_shards, tmp_path_factory):
    """(report folder, Report, keys in dataset order) for 3 sound samples + the crafted one."""
    root = tmp_path_factory.mktemp("html")
    shards = root / "shards"
    keys = with_quality(vitonhd_shards, shards)
    _evil_shard(vitonhd_shards, shards)
    rep = write_report(shards, root / "report", tile_height=256, thumb_height=160)
    return root / "report", rep, keys


# --------------------------------------------------------------------------------------------------- the files

def test_every_sample_has_a_tile_thumbnail_and_full_overlay(report):
    out, rep, (passed, unchecked, flagged) = report
    page = (out / "index.html").read_text()
    tiles = re.findall(r'<figure class="tile (\w+)"', page)
    assert rep.nsamples == 4 and tiles == ["flagged", "flagged", "passed", "unchecked"]  # most flags first
    for i in range(1, 5):
        for sub, height in (("thumbs", 160), ("full", None)):
            img = Image.open(out / sub / f"{i:05d}.jpg")
            assert img.format == "JPEG" and (height is None or img.height == height)
            assert f'{sub}/{i:05d}.jpg' in page
    assert sorted(p.name for p in out.iterdir()) == sorted([MARKER, "full", "index.html", "thumbs"])
    # filters: every flag, category, producer and pair present in the data is an option
    for option in ('value="left_right"', 'value="agn_face"', 'value="hair_far"', 'value="upper_body"',
                   'value="parse:', 'value="unpaired"', 'value="unchecked"'):
        assert option in page, option
    assert "http://" not in page and "https://" not in page and "<link" not in page  # nothing fetched


def test_shard_texts_are_escaped(report):
    out, rep, _ = report
    page = (out / "index.html").read_text()
    assert PAYLOAD not in page and EVIL_KEY not in page and "<svg" not in page
    assert page.count("<script>") == 1  # ours
    assert "&lt;script&gt;document.body.setAttribute" in page  # the reason, shown as text
    assert "&lt;svg onload=document[&#x27;title&#x27;]" in page  # the crafted key, shown as text
    assert "person/evil.jpg" in page and "no person found &lt;script&gt;" in page  # the build failure
    assert any(f["source"] == "person/evil.jpg" and f["stage"] == "pose" for f in rep.failures)
    # the crafted sample is named by the problems (its meta.json key differs), never used for a file name
    assert any(k == EVIL_KEY for _, k, _ in rep.problems)
    assert not list(out.rglob("*svg*"))


# ------------------------------------------------------------------------------------------- the report folder

def test_the_report_folder_is_new_empty_or_an_earlier_report(vitonhd_shards, tmp_path):
    shards = tmp_path / "shards"
    with_quality(vitonhd_shards, shards)
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"precious")
    with pytest.raises(ConfigError, match="not an inspect report"):
        write_report(shards, foreign, tile_height=128, thumb_height=128)
    assert sorted(p.name for p in foreign.iterdir()) == ["holiday.jpg"]
    with pytest.raises(ConfigError, match="equals shard folder"):
        write_report(shards, shards, tile_height=128, thumb_height=128)
    out = tmp_path / "report"
    write_report(shards, out, tile_height=128, thumb_height=128)
    (out / "thumbs" / "00099.jpg").write_bytes(b"stale")
    (out / ".index.html.x1y2.partial").write_bytes(b"left by a killed run")
    # a link planted in an earlier report cannot lead the next one outside it
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.rmtree(out / "full")
    (out / "full").symlink_to(elsewhere, target_is_directory=True)
    rep = write_report(shards, out, tile_height=128, thumb_height=128)
    assert rep.nsamples == 3 and not (out / "thumbs" / "00099.jpg").exists()
    assert not (out / "full").is_symlink() and list(elsewhere.iterdir()) == []
    assert not (out / ".index.html.x1y2.partial").exists()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="never writes"):
        write_report(shards, out, tile_height=128, thumb_height=128)
    result = runner.invoke(app, ["inspect", str(shards), "--out", str(tmp_path / "s.png"), "--html", str(foreign)])
    assert result.exit_code == 2 and "notaninspectreport" in "".join(result.output.split()), result.output


def _listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_a_report_folder_holding_the_shards_is_refused_before_anything_is_deleted(vitonhd_shards, tmp_path):
    shards = tmp_path / "shards"
    with_quality(vitonhd_shards, shards)
    out = tmp_path / "report"
    write_report(shards, out, tile_height=128, thumb_height=128)
    # the earlier report's full/ replaced by a copy of the shards, then inspected with the report as --html
    shutil.rmtree(out / "full")
    shutil.copytree(shards, out / "full")
    before = _listing(out / "full")
    result = runner.invoke(app, ["inspect", str(out / "full"), "--out", str(tmp_path / "s.png"), "--html", str(out)])
    assert result.exit_code == 2 and "containsshardfolder" in "".join(result.output.split()), result.output
    assert _listing(out / "full") == before and any(n.endswith(".tar") for n in before)
    # with the default --out (the sheet beside the shards) nothing is written there either: refused first
    result = runner.invoke(app, ["inspect", str(out / "full"), "--html", str(out)])
    assert result.exit_code == 2 and _listing(out / "full") == before
    with pytest.raises(ConfigError, match="contains shard folder"):  # a deeper shard folder alike
        write_report(out / "full", tmp_path, tile_height=128, thumb_height=128)
    # another shard folder: the report's full/ holds more than its images, so it is not cleared either
    with pytest.raises(ConfigError, match="only NNNNN.jpg images"):
        write_report(shards, out, tile_height=128, thumb_height=128)
    assert _listing(out / "full") == before
    # a report folder inside the shard folder is fine, a second run replaces it, and the shards stay
    tars = {n: b for n, b in _listing(shards).items() if n.endswith(".tar")}
    for _ in range(2):
        rep = write_report(shards, shards / "report", tile_height=128, thumb_height=128)
        assert rep.nsamples == 3 and len(list((shards / "report" / "thumbs").iterdir())) == 3
    assert {n: b for n, b in _listing(shards).items() if n.endswith(".tar")} == tars


def test_malformed_stats_files_are_problems_not_crashes(vitonhd_shards, tmp_path):
    shards = tmp_path / "shards"
    s = samples(vitonhd_shards)
    write_shard(shards, 0, s[:2])
    write_shard(shards, 1, s[2:])
    write_manifest(shards, "t", {})
    (shards / "00000_stats.json").write_text("{not json")
    stats = json.loads((shards / "00001_stats.json").read_text())
    stats["failures"] = ["a string", {"reason": ["not", "text"], "stage": None}]
    (shards / "00001_stats.json").write_text(json.dumps(stats))
    rep = write_report(shards, tmp_path / "r", tile_height=128, thumb_height=128)
    problems = " ".join(r for _, _, r in rep.problems)
    assert "00000_stats.json is not readable JSON" in problems and "00001_stats.json failures" in problems
    assert rep.failures == [{"shard": "00001_stats.json", "key": "", "source": "", "stage": "",
                             "reason": "['not', 'text']"}]
    result = runner.invoke(app, ["inspect", str(shards), "--out", str(tmp_path / "s.png"),
                                 "--html", str(tmp_path / "r")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "00000_stats.jsonisnotreadableJSON" in "".join(result.output.split())
    # nested deeper than Python's json parser goes (RecursionError): a problem too
    (shards / "00000_stats.json").write_text("[" * 100_000)
    (shards / "manifest.json").write_text("[" * 100_000)
    rep = write_report(shards, tmp_path / "r", tile_height=128, thumb_height=128)
    problems = " ".join(r for _, _, r in rep.problems)
    assert "00000_stats.json is not readable JSON" in problems and "manifest.json is not readable JSON" in problems


# ------------------------------------------------------------------------------------------ headless Chromium

def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but chromium is not installed: .ci/run installs the Debian package chromium")
        pytest.skip("chromium is not installed (Debian package chromium; CI installs it and runs this test)")
    return found


def _browse(page: Path, tmp_path: Path, *args: str, hash_: str = "") -> subprocess.CompletedProcess:
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", "--window-size=1280,2000",
           *args, page.resolve().as_uri() + hash_]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=True)


def _tiles(dom: str) -> list[str]:
    return re.findall(r'<figure class="tile[^>]*>', dom)


def test_chromium_renders_a_tile_with_a_loaded_thumbnail_per_sample(report, tmp_path):
    out, rep, _ = report
    dom = _browse(out / "index.html", tmp_path, "--dump-dom").stdout
    assert 'data-ready="1"' in dom, dom[:2000]  # the page's script ran to its end
    tiles = _tiles(dom)
    assert len(tiles) == rep.nsamples == 4
    widths = [int(m) for t in tiles for m in re.findall(r'data-loaded="(\d+)"', t)]
    assert len(widths) == 4 and all(w > 0 for w in widths), tiles  # every thumbnail decoded (naturalWidth)
    assert not any("hidden" in t for t in tiles) and 'data-shown="4"' in dom
    # no shard text ran as script or became an element
    body = re.search(r"<body[^>]*>", dom).group(0)
    assert "data-pwned" not in body and "<title>pwned" not in dom and "<svg" not in dom and '<img src="x"' not in dom


def test_chromium_filter_from_the_url_hash(report, tmp_path):
    out, _, (passed, unchecked, flagged) = report
    dom = _browse(out / "index.html", tmp_path, "--dump-dom", hash_="#flag=left_right").stdout
    tiles = _tiles(dom)
    shown = [t for t in tiles if "hidden" not in t]
    assert len(tiles) == 4 and len(shown) == 1 and 'data-flags="left_right agn_face"' in shown[0]
    assert 'data-shown="1"' in dom
    dom = _browse(out / "index.html", tmp_path, "--dump-dom", hash_="#flag=any&category=upper_body").stdout
    assert len([t for t in _tiles(dom) if "hidden" not in t]) == 2  # the flagged official sample + the crafted one
    dom = _browse(out / "index.html", tmp_path, "--dump-dom", hash_="#flag=unchecked").stdout
    assert [t for t in _tiles(dom) if "hidden" not in t] == [t for t in _tiles(dom) if 'data-status="unchecked"' in t]
    # a malformed escape filters nothing: every tile shown, the script ran to its end
    dom = _browse(out / "index.html", tmp_path, "--dump-dom", hash_="#flag=%E0%A4%A").stdout
    assert 'data-ready="1"' in dom and 'data-shown="4"' in dom
    assert len([t for t in _tiles(dom) if "hidden" not in t]) == 4


def test_chromium_screenshot_shows_the_thumbnails(report, tmp_path):
    out, _, _ = report
    shot = tmp_path / "shot.png"
    _browse(out / "index.html", tmp_path, f"--screenshot={shot}")
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert img.shape[:2] == (2000, 1280)
    gallery = img[150:1100]
    assert gallery.std() > 40  # photos, not a blank page
    # the thumbnails' colours: the photo's and the overlays' (saturated red of the agnostic mask, green outline)
    thumb = np.asarray(Image.open(out / "thumbs/00001.jpg").convert("RGB")).astype(int)
    sat = gallery.max(axis=2) - gallery.min(axis=2)
    assert (sat > 120).mean() > 0.01
    colours = {tuple(c) for c in (thumb[::8, ::8] // 32).reshape(-1, 3)}
    seen = {tuple(c) for c in (gallery[::2, ::2] // 32).reshape(-1, 3)}
    assert len(colours & seen) > 0.5 * len(colours)


def test_cli_writes_the_report_beside_the_sheet(vitonhd_shards, tmp_path):
    shards = tmp_path / "shards"
    with_quality(vitonhd_shards, shards)
    result = runner.invoke(app, ["inspect", str(shards), "--out", str(tmp_path / "s.png"), "--html",
                                 str(tmp_path / "r"), "--tile-height", "128"])
    assert result.exit_code == 0, result.output
    text = "".join(result.output.split())
    assert f"HTMLreport:{tmp_path / 'r' / 'index.html'}(3samples,1buildfailures)".replace(" ", "") in text
    assert len(list((tmp_path / "r" / "thumbs").iterdir())) == 3 and (tmp_path / "s.png").is_file()
