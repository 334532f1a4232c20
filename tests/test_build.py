"""`vitonprep build` on real photos: the bad-input corpus, kill-and-resume, CLI exit codes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from vitonprep.build import build_dataset
from vitonprep.cli import app
from vitonprep.config import load_pipeline_config
from vitonprep.shards import iter_tar_samples, list_shards
from vitonprep.validate import validate_shards

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


def _keys(out: Path) -> list[str]:
    return [s.key for tar in list_shards(out) for s in iter_tar_samples(tar)]


def _samples(out: Path) -> dict:
    return {s.key: s for tar in list_shards(out) for s in iter_tar_samples(tar)}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, data_dir) -> Path:
    """Every kind of bad input the issue names, made from the bundled photos."""
    root = tmp_path_factory.mktemp("corpus") / "raw"
    person, cloth = root / "person", root / "cloth"
    person.mkdir(parents=True)
    cloth.mkdir()
    src = data_dir / "samples" / "person" / "00034_00.jpg"
    good = Image.open(src).convert("RGB")
    data = src.read_bytes()
    shutil.copy(src, person / "good.jpg")
    (person / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (person / "empty.jpg").write_bytes(b"")
    (person / "text.jpg").write_text("this is not a photo\n")
    good.convert("CMYK").save(person / "cmyk.jpg", quality=95)
    grey16 = (np.asarray(good.convert("L"), np.uint16) * 257)
    Image.fromarray(grey16).save(person / "grey16.png")  # 16-bit grayscale PNG
    assert Image.open(person / "grey16.png").mode.startswith("I")
    rgba = good.convert("RGBA")
    alpha = np.full((1024, 768), 255, np.uint8)
    alpha[:, :60] = 0  # a transparent strip: composited on white
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(person / "rgba.png")
    good.convert("L").save(person / "grey.jpg", quality=95)
    # stored rotated 90 degrees with EXIF orientation 6 ("rotate 90 CW to display"): must come out upright
    exif = Image.Exif()
    exif[0x0112] = 6
    good.transpose(Image.Transpose.ROTATE_90).save(person / "exif_rotated.jpg", quality=95, exif=exif.tobytes())
    good.resize((16, 16)).save(person / "tiny.jpg")
    Image.new("RGB", (768, 1024), (236, 232, 226)).save(person / "wall.jpg")
    two = Image.new("RGB", (768, 1024), (240, 240, 240))
    other = Image.open(data_dir / "samples" / "person" / "00055_00.jpg").convert("RGB")
    two.paste(good.resize((384, 512)), (0, 256))
    two.paste(other.resize((384, 512)), (384, 256))
    two.save(person / "two_persons.jpg", quality=95)
    shutil.copy(data_dir / "samples" / "cloth" / "04469_00.jpg", person / "garment_only.jpg")
    shutil.copy(src, person / "personne_élégante.jpg")
    shutil.copy(data_dir / "samples" / "cloth" / "04469_00.jpg", cloth / "shirt.jpg")
    Image.new("RGB", (768, 1024), (255, 255, 255)).save(cloth / "blank.jpg")
    names = sorted(p.name for p in person.iterdir())
    lines = [f"{n} shirt.jpg" for n in names] + ["good.jpg blank.jpg"]  # a garment photo with no garment
    (root / "pairs.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


GOOD = {"good", "cmyk", "grey16", "rgba", "grey", "exif_rotated", "two_persons", "personne_elegante"}
FAILS = {  # person file -> stage that must record it
    "truncated.jpg": "load_person", "empty.jpg": "load_person", "text.jpg": "load_person", "tiny.jpg": "load_person",
    "wall.jpg": "pose", "garment_only.jpg": "pose", "blank.jpg": "cloth_mask",
}


@pytest.fixture(scope="module")
def corpus_build(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus_out") / "shards"
    cfg = load_pipeline_config("default", {"samples_per_shard": 4})
    report = build_dataset(cfg, corpus, out)
    return out, report


def test_bad_inputs_become_samples_or_recorded_failures(corpus_build):
    out, report = corpus_build
    keys = _keys(out)
    assert len(keys) == len(set(keys))
    stems = {k.split("__")[0] for k in keys}
    assert {s for s in stems if not s.startswith("personne")} == GOOD - {"personne_elegante"}
    assert any(s.startswith("personne_elegante-") for s in stems)  # unicode name -> legal key with a hash
    failed = {Path(f.source).name: f for f in report.failures}
    for name, stage in FAILS.items():
        assert name in failed, f"{name} not recorded: {sorted(failed)}"
        assert failed[name].stage == stage, (name, failed[name])
        assert failed[name].reason
    assert "too small" in failed["tiny.jpg"].reason
    assert "0 bytes" in failed["empty.jpg"].reason
    assert "not an image" in failed["text.jpg"].reason
    assert len(report.failures) == len(FAILS)
    assert report.nsamples == len(GOOD)
    assert validate_shards(out).ok


def test_exif_rotation_and_modes_are_normalised(corpus_build, data_dir):
    out, _ = corpus_build
    samples = _samples(out)
    from vitonprep.codecs import decode_rgb

    upright = decode_rgb(samples["good__shirt"].members["image.jpg"]).astype(int)
    rotated = decode_rgb(samples["exif_rotated__shirt"].members["image.jpg"]).astype(int)
    assert np.abs(upright - rotated).mean() < 3  # same picture, not a sideways one
    for key in ("cmyk__shirt", "grey16__shirt"):
        meta = json.loads(samples[key].members["meta.json"])
        assert meta["size"] == [768, 1024] and meta["original_size"] == [768, 1024]
    two = json.loads(samples["two_persons__shirt"].members["meta.json"])
    assert two["person_check"]["num_persons"] == 2
    assert two["producers"]["parse"]["approximate"] and two["producers"]["image_densepose"]["approximate"]
    # BlazePose mapped to BODY_25 approximates OpenPose, and maps computed from approximate inputs are approximate
    good = json.loads(samples["good__shirt"].members["meta.json"])["producers"]
    for name in ("pose", "parse", "image_densepose", "agn", "agn_mask", "parse_agn", "gt_cloth_warped_mask",
                 "pose_render"):
        assert good[name]["approximate"] is True, name
    assert good["image"]["approximate"] is False and good["cloth_mask"]["approximate"] is False


def test_canvas_sized_jpegs_are_stored_byte_for_byte(corpus, corpus_build):
    # an upright RGB JPEG that already is 768x1024 is stored as it is (no second JPEG generation); rotated,
    # converted or refitted photos are encoded from the canvas
    out, _ = corpus_build
    samples = _samples(out)
    assert samples["good__shirt"].members["image.jpg"] == (corpus / "person" / "good.jpg").read_bytes()
    assert samples["good__shirt"].members["cloth.jpg"] == (corpus / "cloth" / "shirt.jpg").read_bytes()
    for key, name in (("exif_rotated__shirt", "exif_rotated.jpg"), ("cmyk__shirt", "cmyk.jpg"),
                      ("grey__shirt", "grey.jpg"), ("rgba__shirt", "rgba.png")):
        assert samples[key].members["image.jpg"] != (corpus / "person" / name).read_bytes(), key


def test_jpeg_stored_as_is_only_when_the_canvas_is_the_decoded_file(tmp_path, data_dir):
    import io

    from vitonprep.photos import fit_to_canvas, jpeg_stored_as_is, load_photo

    data = (data_dir / "samples" / "person" / "00034_00.jpg").read_bytes()
    canvas, fit = fit_to_canvas(load_photo(data, "x"), (768, 1024), "pad")
    assert jpeg_stored_as_is(data, fit, (768, 1024))
    assert not jpeg_stored_as_is(data, fit, (384, 512))
    # same size but EXIF says "rotate 180": the stored pixels are not the upright canvas
    exif = Image.Exif()
    exif[0x0112] = 3
    buf = io.BytesIO()
    Image.open(io.BytesIO(data)).save(buf, "JPEG", quality=95, exif=exif.tobytes())
    flipped = buf.getvalue()
    canvas2, fit2 = fit_to_canvas(load_photo(flipped, "x"), (768, 1024), "pad")
    assert fit2 == fit and not jpeg_stored_as_is(flipped, fit2, (768, 1024))
    png = io.BytesIO()
    Image.fromarray(canvas).save(png, "PNG")
    assert not jpeg_stored_as_is(png.getvalue(), fit, (768, 1024))
    small = io.BytesIO()
    Image.fromarray(canvas).resize((600, 800)).save(small, "JPEG")
    _, fit3 = fit_to_canvas(load_photo(small.getvalue(), "x"), (768, 1024), "pad")
    assert not jpeg_stored_as_is(small.getvalue(), fit3, (768, 1024))


def test_several_persons_policy_reject(corpus, tmp_path):
    cfg = load_pipeline_config("default", {"persons.several": "reject", "samples_per_shard": 20})
    root = tmp_path / "raw"
    (root / "person").mkdir(parents=True)
    (root / "cloth").mkdir()
    shutil.copy(corpus / "person" / "two_persons.jpg", root / "person")
    shutil.copy(corpus / "person" / "good.jpg", root / "person")
    report = build_dataset(cfg, root, tmp_path / "out")
    assert _keys(tmp_path / "out") == ["good"]
    assert [(Path(f.source).name, f.stage) for f in report.failures] == [("two_persons.jpg", "person")]
    assert "2 persons" in report.failures[0].reason


def _run_cli(args, **kw):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "vitonprep", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)


def test_sigkill_mid_build_then_resume_equals_uninterrupted(tmp_path, data_dir):
    raw = data_dir / "samples"
    common = ["--samples-per-shard", "1", "--sheet", "0"]
    ref = tmp_path / "ref"
    assert _run_cli(["build", str(raw), str(ref), *common]).wait(timeout=600) == 0
    out = tmp_path / "killed"
    proc = _run_cli(["build", str(raw), str(out), *common])
    deadline = time.time() + 300
    while not (out / "00001_stats.json").exists():  # let it finish some shards, then kill it mid-run
        assert proc.poll() is None and time.time() < deadline, "build ended before it could be killed"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "00004_stats.json").exists(), "the build finished before the kill"
    proc = _run_cli(["build", str(raw), str(out), *common])
    assert proc.wait(timeout=600) == 0, proc.stdout.read().decode()
    keys = _keys(out)
    assert len(keys) == len(set(keys))
    assert sorted(keys) == sorted(_keys(ref))
    assert validate_shards(out).ok
    for tar in list_shards(ref):  # the same samples, byte for byte
        assert tar.read_bytes() == (out / tar.name).read_bytes()


def test_cli_exit_codes(tmp_path, data_dir):
    assert runner.invoke(app, ["build", str(tmp_path / "missing"), str(tmp_path / "o")]).exit_code == 2
    result = runner.invoke(app, ["build", str(data_dir / "samples"), str(tmp_path / "o"), "-p", "nope"])
    assert result.exit_code == 2 and "not found" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "pipelines" / "default.yaml").read_text().replace("cloth-mask-opencv", "cloth-magic"))
    result = runner.invoke(app, ["build", str(data_dir / "samples"), str(tmp_path / "o"), "-p", str(bad)])
    assert result.exit_code == 2 and "cloth-magic" in result.output and "known" in result.output
    # nothing usable: a folder of one blank wall
    wall = tmp_path / "wall"
    wall.mkdir()
    Image.new("RGB", (768, 1024), (230, 230, 230)).save(wall / "wall.jpg")
    result = runner.invoke(app, ["build", str(wall), str(tmp_path / "w")])
    assert result.exit_code == 1 and "no usable sample" in result.output


def test_strict_fails_on_any_failure(corpus, tmp_path):
    root = tmp_path / "raw"
    (root / "person").mkdir(parents=True)
    shutil.copy(corpus / "person" / "good.jpg", root / "person")
    shutil.copy(corpus / "person" / "wall.jpg", root / "person")
    result = runner.invoke(app, ["build", str(root), str(tmp_path / "o"), "--strict", "--sheet", "0"])
    assert result.exit_code == 1
    result = runner.invoke(app, ["build", str(root), str(tmp_path / "o2"), "--sheet", "0"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("category, persons, garment", [
    ("dresses", ["052472_0.jpg", "052964_0.jpg"], "053290_1.jpg"),
    ("lower_body", ["049205_0.jpg", "051482_0.jpg"], "051412_1.jpg"),
])
def test_other_categories_on_dresscode_photos(tmp_path, data_dir, category, persons, garment):
    from vitonprep.codecs import decode_labels, decode_mask

    raw = tmp_path / "raw"
    (raw / "person").mkdir(parents=True)
    (raw / "cloth").mkdir()
    for p in persons:
        shutil.copy(data_dir / "dresscode-photos/person" / p, raw / "person" / p)
    shutil.copy(data_dir / "dresscode-photos/cloth" / garment, raw / "cloth" / garment)
    (raw / "pairs.txt").write_text("".join(f"{p} {garment}\n" for p in persons))
    cfg = load_pipeline_config("default", {"category": category})
    report = build_dataset(cfg, raw, tmp_path / "out")
    assert report.nsamples == 2, report.failures
    assert validate_shards(tmp_path / "out").ok
    labels = {"dresses": (5, 6, 7, 9, 12), "lower_body": (9, 12)}[category]  # a dress replaces the outfit
    for s in _samples(tmp_path / "out").values():
        meta = json.loads(s.members["meta.json"])
        assert meta["category"] == category
        assert meta["producers"]["agn_mask"]["backend"] == "vitonprep-idm-mask"
        gt = decode_mask(s.members["gt_cloth_warped_mask.png"])
        parse = decode_labels(s.members["parse.png"])
        assert gt.any() and not (gt & ~np.isin(parse, labels)).any()  # the garment labels inside agn_mask
        # the region to inpaint covers the garment being replaced
        assert decode_mask(s.members["agn_mask.png"])[gt].mean() > 0.9


def test_plan_fingerprint_ignores_where_things_run_not_what_they_make():
    from vitonprep.build import _plan_fingerprint

    base = _plan_fingerprint(load_pipeline_config("default"))
    moved = _plan_fingerprint(load_pipeline_config("default", {
        "weights_dir": "/elsewhere", "stages.pose.resources": {"actors": 1, "num_cpus": 2}}))
    assert moved == base  # a build may resume with other weight folders or cluster layouts
    assert _plan_fingerprint(load_pipeline_config("default", {"category": "dresses"})) != base


def test_export_that_disagrees_fails_clearly_and_overwrite_replaces_it(corpus, tmp_path):
    # an export folder holding another build's files: a clear error naming the file (not a traceback), and
    # --overwrite starts that folder afresh as it does OUT
    root = tmp_path / "raw"
    (root / "person").mkdir(parents=True)
    shutil.copy(corpus / "person" / "good.jpg", root / "person")
    export = tmp_path / "vitonhd"
    stale = export / "train" / "image" / "good.jpg"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"another build's photo")
    args = ["build", str(root), str(tmp_path / "o"), "--sheet", "0", "--export-vitonhd", str(export)]
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    said = result.output.replace("\n", "")  # rich folds long paths at the terminal width
    assert "VITON-HD export" in said and "good.jpg" in said and "--overwrite" in said
    result = runner.invoke(app, [*args, "--overwrite"])
    assert result.exit_code == 0, result.output
    assert stale.read_bytes() != b"another build's photo" and stale.read_bytes()[:2] == b"\xff\xd8"
