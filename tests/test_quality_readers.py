"""Readers of meta.json ``quality``: validate (warnings, --strict errors, malformed = error), export (flagged left
out in every format, --keep-flagged), `vitonprep quality --annotate` (a copy differing in meta only) and the
trainer (data.skip_flagged, data.pairs checked at config time)."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from vitonprep import codecs
from vitonprep.build import build_dataset
from vitonprep.cli import app
from vitonprep.config import load_pipeline_config
from vitonprep.errors import ConfigError
from vitonprep.export import EXPORTERS, export_dataset
from vitonprep.quality import GarmentFaces, QualityConfig, check_sample, decode_sample
from vitonprep.shards import (
    Sample,
    iter_tar_samples,
    list_shards,
    read_manifest,
    read_stats,
    write_manifest,
    write_shard,
)
from vitonprep.validate import read_quality, validate_shards
from vitontrain.cli import app as train_app
from vitontrain.data.module import DataConfig, ResumableLoader, ShardDataModule, expand_shard_specs
from vitontrain.data.quality import quality_state
from vitontrain.data.shards import ContractError
from vitontrain.data.stream import ShardStream, StreamConfig
from vitontrain.train.config import load_fit_config

runner = CliRunner()
BOTH = ("paired", "unpaired")
FLAGGED = {"flags": [{"check": "left_right", "reason": "left/right joints mirrored: the shoulders' order "
                                                        "disagrees with hips"}],
           "scores": {"left_right": 0.25, "orientation": 0.99}}
PASSED = {"flags": [], "scores": {"left_right": 1.0, "orientation": 0.99}}
#: malformed fields and the words of validate's error
MALFORMED = [("no", "not an object"), ([], "not an object"), ({"scores": {}}, "flags"),
             ({"flags": "left_right", "scores": {}}, "flags"), ({"flags": [{"check": "x"}], "scores": {}}, "flags[0]"),
             ({"flags": [{"check": 3, "reason": "r"}], "scores": {}}, "flags[0]"), ({"flags": []}, "scores"),
             ({"flags": [], "scores": {"x": "high"}}, "finite"), ({"flags": [], "scores": {"x": True}}, "finite"),
             ({"flags": [], "scores": {"x": float("nan")}}, "finite"),
             ({"flags": [], "scores": {"x": float("inf")}}, "finite"),
             ({"flags": [], "scores": {"x": 10 ** 400}}, "finite")]  # too large for a float: OverflowError


def _all_samples(shards: Path) -> dict[str, dict[str, bytes]]:
    return {s.key: s.members for tar in list_shards(shards) for s in iter_tar_samples(tar)}


def _files(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def with_quality(src: Path, dst: Path, values: dict[str, Any]) -> Path:
    """A copy of ``src`` written by the shard writer with meta.quality = ``values[key]`` (no field for other keys)."""
    for tar in list_shards(src):
        samples = []
        for s in iter_tar_samples(tar):
            meta = json.loads(s.members["meta.json"])
            meta.pop("quality", None)
            if s.key in values:
                meta["quality"] = values[s.key]
            samples.append(Sample(s.key, {**s.members, "meta.json": codecs.encode_json(meta)}))
        write_shard(dst, int(tar.stem), samples)
    write_manifest(dst, "quality-test", {})
    return dst


@pytest.fixture(scope="module")
def keys(vitonhd_shards) -> list[str]:
    return sorted(_all_samples(vitonhd_shards))


@pytest.fixture(scope="module")
def mixed(vitonhd_shards, keys, tmp_path_factory) -> Path:
    """The converted official sample: keys[0] flagged, keys[1] passed, keys[2] never checked."""
    return with_quality(vitonhd_shards, tmp_path_factory.mktemp("mixed") / "shards",
                        {keys[0]: FLAGGED, keys[1]: PASSED})


# ------------------------------------------------------------------------------------------------------ the field
def test_both_readers_agree_on_every_shape():
    """vitonprep's reader (validate, export) and the trainer's twin give the same state to every value."""
    cases = [{}, {"quality": FLAGGED}, {"quality": PASSED}, {"quality": {**PASSED, "later": 1}}, "not a meta",
             *({"quality": bad} for bad, _ in MALFORMED)]
    states = [(read_quality(meta).state, quality_state(meta)[0]) for meta in cases]
    assert [a for a, _ in states] == ["unchecked", "flagged", "passed", "passed", "unchecked",
                                      *["malformed"] * len(MALFORMED)]
    assert all(a == b for a, b in states), states
    assert read_quality({"quality": FLAGGED}).checks == ["left_right"]


# ------------------------------------------------------------------------------------------------------- validate
def test_validate_reports_flags_as_warnings_and_counts_unchecked(mixed, keys, tmp_path):
    res = runner.invoke(app, ["validate", str(mixed), "--report", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output  # flags are warnings: the shards stay sound
    assert "sound" in res.output and "1 of 2 checked samples flagged (left_right 1)" in res.output
    assert "1 samples never quality-checked (vitonprep quality --annotate)" in res.output
    assert keys[0] in res.output and "shoulders' order disagrees with hips" in res.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["ok"] and report["quality"] == {"passed": 1, "flagged": 1, "unchecked": 1, "malformed": 0,
                                                  "flags_by_check": {"left_right": 1}}
    flagged = [i for i in report["issues"] if i["check"] == "quality.left_right"]
    assert [(i["level"], i["key"]) for i in flagged] == [("warning", keys[0])]


def test_validate_strict_makes_flags_errors(mixed, keys, tmp_path):
    res = runner.invoke(app, ["validate", str(mixed), "--strict", "--report", str(tmp_path / "r.json")])
    assert res.exit_code == 1, res.output
    assert "NOT SOUND" in res.output
    report = validate_shards(mixed, strict=True)
    assert [(i.level, i.key) for i in report.errors] == [("error", keys[0])]


@pytest.mark.parametrize("bad,words", MALFORMED)
def test_validate_malformed_quality_is_an_error_naming_shard_key_and_reason(vitonhd_shards, keys, tmp_path, bad,
                                                                             words):
    shards = with_quality(vitonhd_shards, tmp_path / "bad", {keys[1]: bad, keys[0]: PASSED})
    report = validate_shards(shards)
    errors = [i for i in report.errors if i.check == "quality"]
    assert [(e.key, e.shard) for e in errors] == [(keys[1], _shard_of(shards, keys[1]))]
    assert words in errors[0].message and "meta.quality" in errors[0].message
    assert report.quality_counts()["malformed"] == 1 and not report.ok


def _shard_of(shards: Path, key: str) -> str:
    return next(t.name for t in list_shards(shards) for s in iter_tar_samples(t) if s.key == key)


def test_validate_cli_exit_1_on_a_malformed_quality(vitonhd_shards, keys, tmp_path):
    shards = with_quality(vitonhd_shards, tmp_path / "bad", {keys[2]: {"flags": None, "scores": {}}})
    res = runner.invoke(app, ["validate", str(shards), "--report", "-"])
    assert res.exit_code == 1
    assert f"{_shard_of(shards, keys[2])} {keys[2]}: meta.quality.flags is missing or not a list" in res.output


# --------------------------------------------------------------------------------------------------------- export
@pytest.mark.parametrize("fmt", sorted(EXPORTERS))
def test_export_leaves_flagged_out_in_every_format(mixed, keys, tmp_path, fmt):
    rep = export_dataset(fmt, mixed, tmp_path / "default")
    assert rep.nsamples == 2 and not rep.refused  # the passed and the unchecked sample
    assert [(r.key, r.reason) for r in rep.flagged] == [(keys[0], "flagged by left_right")]
    kept = export_dataset(fmt, mixed, tmp_path / "kept", keep_flagged=True)
    assert kept.nsamples == 3 and not kept.flagged


def test_export_cli_says_what_it_left_out(mixed, keys, tmp_path):
    res = runner.invoke(app, ["export", str(mixed), str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert "exported 2 samples" in res.output
    assert "left out 1 flagged samples: see vitonprep quality / inspect" in " ".join(res.output.split())
    person = json.loads(_all_samples(mixed)[keys[0]]["meta.json"])["person_id"]
    assert not list((tmp_path / "out").rglob(f"{person}*"))
    res = runner.invoke(app, ["export", str(mixed), str(tmp_path / "all"), "--keep-flagged"])
    assert res.exit_code == 0 and "exported 3 samples" in res.output and "left out" not in res.output
    assert list((tmp_path / "all").rglob(f"{person}*"))


def test_export_cli_refuses_the_shard_folder_as_out(mixed):
    before = _files(mixed)
    res = runner.invoke(app, ["export", str(mixed), str(mixed)])
    assert res.exit_code == 2 and "equals SHARDS" in res.output
    assert _files(mixed) == before and not (mixed / "test").exists()


def test_export_refuses_a_sample_whose_quality_is_malformed(vitonhd_shards, keys, tmp_path):
    shards = with_quality(vitonhd_shards, tmp_path / "bad", {keys[1]: {"flags": [], "scores": {"x": "1"}}})
    rep = export_dataset("vitonhd", shards, tmp_path / "out")
    assert rep.nsamples == 2 and [(r.key, "finite number" in r.reason) for r in rep.refused] == [(keys[1], True)]


# ------------------------------------------------------------------------------------------------------- annotate
@pytest.fixture(scope="module")
def annotated(vitonhd_shards, tmp_path_factory) -> Path:
    before = _files(vitonhd_shards)
    out = tmp_path_factory.mktemp("annotated") / "out"
    res = runner.invoke(app, ["quality", str(vitonhd_shards), "--annotate", str(out)])
    assert res.exit_code == 0, res.output
    assert f"annotated copy: {out} (3 samples, 0 flagged)" in " ".join(res.output.split())
    assert _files(vitonhd_shards) == before  # the input is only read
    return out


def test_annotate_changes_only_meta(vitonhd_shards, annotated):
    old, new = _all_samples(vitonhd_shards), _all_samples(annotated)
    assert list(new) == list(old)
    cfg = QualityConfig()
    faces = GarmentFaces()
    try:
        for key, members in old.items():
            assert set(new[key]) == set(members)
            assert {m: d for m, d in new[key].items() if m != "meta.json"} == \
                   {m: d for m, d in members.items() if m != "meta.json"}
            meta, was = json.loads(new[key]["meta.json"]), json.loads(members["meta.json"])
            quality = meta.pop("quality")
            assert meta == was
            assert quality == check_sample(decode_sample(members, key), cfg, faces).to_dict()
            assert read_quality({"quality": quality}).state == "passed"
    finally:
        faces.close()
    assert [t.name for t in list_shards(annotated)] == [t.name for t in list_shards(vitonhd_shards)]


def test_annotated_copy_validates_and_keeps_the_manifest(vitonhd_shards, annotated):
    report = validate_shards(annotated)
    assert report.ok and not report.errors, report.errors
    assert report.quality_counts()["passed"] == 3 and report.quality_counts()["unchecked"] == 0
    old, new = read_manifest(vitonhd_shards)["vitonprep"], read_manifest(annotated)["vitonprep"]
    assert new["pairs"] == old["pairs"] and new["config"] == old["config"]
    assert new["quality_annotated"]["from"] == str(vitonhd_shards)
    stats = [read_stats(annotated, int(t.stem)) for t in list_shards(annotated)]
    assert [s["quality"] for s in stats] == [{"checked": s["nsamples"], "flagged": 0, "dropped": 0, "by_check": {}}
                                             for s in stats]  # as the build's quality stage writes them


def test_annotate_replaces_an_old_quality_field(annotated, keys, tmp_path):
    stale = with_quality(annotated, tmp_path / "stale", {keys[0]: FLAGGED})
    res = runner.invoke(app, ["quality", str(stale), "--annotate", str(tmp_path / "again")])
    assert res.exit_code == 0, res.output
    for tar in list_shards(annotated):  # the same checks give the same bytes: the shard writer is deterministic
        assert (tmp_path / "again" / tar.name).read_bytes() == tar.read_bytes()


def test_annotate_refuses_unsafe_outputs(vitonhd_shards, tmp_path):
    res = runner.invoke(app, ["quality", str(vitonhd_shards), "--annotate", str(vitonhd_shards)])
    assert res.exit_code == 2 and "equals SHARDS" in res.output
    (tmp_path / "full").mkdir()
    (tmp_path / "full/notes.txt").write_text("mine")
    res = runner.invoke(app, ["quality", str(vitonhd_shards), "--annotate", str(tmp_path / "full")])
    assert res.exit_code == 2 and "not empty" in res.output
    res = runner.invoke(app, ["quality", str(vitonhd_shards), "--annotate", str(tmp_path / "full"), "--overwrite"])
    assert res.exit_code == 2 and "did not write" in res.output
    assert (tmp_path / "full/notes.txt").read_text() == "mine"


def test_annotate_refuses_an_altered_shard(vitonhd_shards, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for p in vitonhd_shards.iterdir():
        if p.is_file():
            (src / p.name).write_bytes(p.read_bytes())
    tar = list_shards(src)[-1]
    data = bytearray(tar.read_bytes())
    data[-20_000] ^= 0xFF  # one byte of the last member's data: the tar still reads, its checksums disagree
    tar.write_bytes(bytes(data))
    res = runner.invoke(app, ["quality", str(src), "--annotate", str(tmp_path / "out")])
    assert res.exit_code == 1
    assert tar.name in res.output and "differs" in res.output
    assert not (tmp_path / "out/manifest.json").exists()
    # the first shard was sound and annotated before the second was refused: a copy goes whole or not at all
    assert tar != list_shards(src)[0] and not list_shards(tmp_path / "out")
    assert validate_shards(tmp_path / "out").errors


@pytest.mark.parametrize("bad", ["no", {"flags": [], "scores": {"x": 10 ** 400}}])
def test_annotate_rewrites_a_malformed_quality_field(vitonhd_shards, keys, tmp_path, bad):
    """validate's message for a malformed field says to rewrite it with --annotate: annotate does not refuse it."""
    src = with_quality(vitonhd_shards, tmp_path / "bad", {keys[-1]: bad})
    assert not validate_shards(src).ok
    res = runner.invoke(app, ["quality", str(src), "--annotate", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert validate_shards(tmp_path / "out").ok
    meta = json.loads(_all_samples(tmp_path / "out")[keys[-1]]["meta.json"])
    assert read_quality(meta).state in ("passed", "flagged")


# -------------------------------------------------------------------------------------------------------- trainer
def _stream_keys(shards: Path, **kw) -> list[str]:
    cfg = StreamConfig(**{**dict(height=64, width=48, batch_size=1, shuffle_buffer=0, seed=1, pairs=BOTH), **kw})
    return [k for b in ShardStream(expand_shard_specs([str(shards)]), cfg, 9) for k in b["__key__"]]


@pytest.fixture(scope="module")
def mixed_train(train_shards, keys, tmp_path_factory) -> Path:
    """3 one-sample shards: keys[0] flagged, keys[1] passed, keys[2] never checked."""
    return with_quality(train_shards, tmp_path_factory.mktemp("mixed_train") / "shards",
                        {keys[0]: FLAGGED, keys[1]: PASSED})


def test_trainer_skips_flagged_samples_and_logs_the_counts(mixed_train, keys, caplog):
    with caplog.at_level(logging.INFO, logger="vitontrain.data.stream"):
        seen = _stream_keys(mixed_train)
    assert len(seen) == 9 and keys[0] not in seen and {keys[1], keys[2]} <= set(seen)
    lines = [r.getMessage() for r in caplog.records if "flagged samples of" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith("epoch 0, rank 0, worker 0: skipped ")
    skipped, read, unchecked = map(int, re.search(r"skipped (\d+) flagged samples of (\d+) read; (\d+) never", lines[0])
                                   .groups())
    assert skipped >= 1 and read >= 9 + skipped and unchecked == seen.count(keys[2])


@pytest.mark.parametrize("num_workers", [0, 2])
def test_skipping_flagged_samples_keeps_resume_exact(mixed_train, keys, num_workers):
    cfg = StreamConfig(height=64, width=48, batch_size=1, shuffle_buffer=2, seed=5, pairs=BOTH)
    urls = expand_shard_specs([str(mixed_train)])
    full = [b["__key__"][0] for b in ResumableLoader(ShardStream(urls, cfg, 6), num_workers=num_workers)]
    assert len(full) == 6 and keys[0] not in full
    resumed = ResumableLoader(ShardStream(urls, cfg, 6), num_workers=num_workers)
    resumed.load_state_dict({**resumed.state_dict(), "epoch": 0, "consumed": 3})
    assert [b["__key__"][0] for b in resumed] == full[3:]


def test_trainer_keeps_flagged_samples_when_told(mixed_train, keys, caplog):
    with caplog.at_level(logging.INFO, logger="vitontrain.data.stream"):
        seen = _stream_keys(mixed_train, skip_flagged=False)
    assert keys[0] in seen
    assert any("kept" in r.getMessage() and "data.skip_flagged: false" in r.getMessage() for r in caplog.records)


def test_trainer_keeps_a_malformed_quality_as_unchecked_with_a_warning(train_shards, keys, tmp_path, caplog):
    shards = with_quality(train_shards, tmp_path / "bad", {keys[0]: {"flags": "x"}, keys[1]: FLAGGED})
    with caplog.at_level(logging.INFO, logger="vitontrain.data.stream"):
        seen = _stream_keys(shards)
    assert keys[0] in seen and keys[1] not in seen
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and all(keys[0] in w and "kept as never quality-checked" in w for w in warnings)
    assert any("with a malformed quality field" in r.getMessage() for r in caplog.records)


def test_trainer_says_so_when_every_sample_is_flagged(train_shards, keys, tmp_path):
    shards = with_quality(train_shards, tmp_path / "all", {k: FLAGGED for k in keys})
    with pytest.raises(ContractError, match="flagged by the quality checks .* data.skip_flagged=false"):
        _stream_keys(shards)
    assert len(_stream_keys(shards, skip_flagged=False)) == 9


def test_sample_grids_skip_flagged_samples_too(mixed_train, keys):
    module = ShardDataModule(DataConfig(shards=(str(mixed_train),), pairs=BOTH, height=64, width=48))
    assert module.preview_batch(3)["__key__"] == [keys[1], keys[2]]
    module = ShardDataModule(DataConfig(shards=(str(mixed_train),), pairs=BOTH, height=64, width=48,
                                        skip_flagged=False))
    assert module.preview_batch(3)["__key__"] == keys


@pytest.mark.parametrize("value", ["[bogus]", "[]", "[paired, person_only]"])
def test_data_pairs_are_checked_when_the_config_is_read(value):
    with pytest.raises(ConfigError, match=r"tiny.yaml.data: pairs must be a non-empty list of paired, unpaired"):
        load_fit_config("tiny", [f"data.pairs={value}"])
    assert load_fit_config("tiny", ["data.pairs=[unpaired]"]).data.pairs == ("unpaired",)
    assert load_fit_config("tiny").data.skip_flagged is True


def test_fit_refuses_bogus_pairs_with_exit_2():
    res = runner.invoke(train_app, ["fit", "--config", "tiny", "--set", "data.pairs=[bogus]"])
    assert res.exit_code == 2
    assert "pairs must be a non-empty list of paired, unpaired" in " ".join(res.output.split())


# ---------------------------------------------------------------------------------------------- on a real build
@pytest.fixture(scope="module")
def built(tmp_path_factory, data_dir) -> Path:
    """The default pipeline on two bundled pairs, one shard each: 00034_00 with a shop garment, and 00035_00 whose
    garment photo is its own person photo (a person given as the garment, which the build's quality stage flags)."""
    raw = tmp_path_factory.mktemp("raw") / "raw"
    (raw / "person").mkdir(parents=True)
    (raw / "cloth").mkdir()
    for person in ("00034_00.jpg", "00035_00.jpg"):
        shutil.copy(data_dir / "samples/person" / person, raw / "person" / person)
    shutil.copy(data_dir / "samples/cloth/04469_00.jpg", raw / "cloth/04469_00.jpg")
    shutil.copy(data_dir / "samples/person/00035_00.jpg", raw / "cloth/00035_00.jpg")
    (raw / "pairs.txt").write_text("00034_00.jpg 04469_00.jpg\n00035_00.jpg 00035_00.jpg\n")
    out = tmp_path_factory.mktemp("built") / "shards"
    assert build_dataset(load_pipeline_config("default", {"samples_per_shard": 1}), raw, out).nsamples == 2
    return out


def test_a_real_build_is_read_by_validate_export_and_the_trainer(built, tmp_path):
    report = validate_shards(built)
    assert report.ok and report.quality_counts()["unchecked"] == 0
    assert report.quality_counts()["passed"] + report.quality_counts()["flagged"] == 2
    assert ("00035_00", "quality.garment_face") in {(i.key, i.check) for i in report.warnings}
    assert not validate_shards(built, strict=True).ok
    rep = export_dataset("vitonhd", built, tmp_path / "vitonhd")
    assert "garment_face" in {r.key: r.reason for r in rep.flagged}["00035_00"]
    assert not (tmp_path / "vitonhd/train/image/00035_00.jpg").exists()
    seen = _stream_keys(built, skip_flagged=True)
    assert seen and "00035_00" not in seen
