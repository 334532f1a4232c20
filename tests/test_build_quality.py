"""The quality stage in the build (issue 17): every built sample's meta.json carries the verdict ``vitonprep quality``
gives on the written shard; ``on_flag: drop`` turns flagged samples into recorded failures (and a killed build
resumes to the same shards); ``enabled: false`` builds what the build made before the stage existed; a rebuild
judges its own maps. Three bundled pairs, built a few times per module."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers.faults import arm_exit_once
from helpers.shards import samples_by_key
from typer.testing import CliRunner

from vitonprep import codecs
from vitonprep.build import BuildOptions, build_dataset
from vitonprep.cli import app
from vitonprep.config import PIPELINES_DIR, QualityPolicy, load_pipeline_config
from vitonprep.errors import ConfigError
from vitonprep.quality import CHECKS, QualityConfig, check_sample, decode_sample
from vitonprep.raw import plan_raw
from vitonprep.sample_meta import carry_over_meta, with_quality
from vitonprep.shards import iter_tar_samples, list_shards, read_stats, write_shard
from vitonprep.stages import Pipeline, QualityStage, SampleContext
from vitonprep.stages import quality as quality_stage

from conftest import raw_from_bundled_pairs

PERSONS = ("00034_00.jpg", "00035_00.jpg", "00055_00.jpg")


def _metas(out: Path) -> dict[str, dict]:
    return {k: json.loads(m["meta.json"]) for k, m in samples_by_key(out).items()}


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    return raw_from_bundled_pairs(tmp_path_factory.mktemp("bq") / "raw", PERSONS)


@pytest.fixture(scope="module")
def kept(raw, tmp_path_factory):
    """The default pipeline (quality on, on_flag: keep)."""
    out = tmp_path_factory.mktemp("kept") / "shards"
    return out, build_dataset(load_pipeline_config("default", {"samples_per_shard": 2}), raw, out)


@pytest.fixture(scope="module")
def drop_yaml(kept, tmp_path_factory) -> Path:
    """default.yaml with ``on_flag: drop`` and an arm-chain threshold between the samples' own scores, so that
    some samples are flagged by the real checker and some are not."""
    scores = sorted(m["quality"]["scores"]["arm_chain"] for m in _metas(kept[0]).values())
    assert scores[0] < scores[-1], scores
    data = yaml.safe_load((PIPELINES_DIR / "default.yaml").read_text())
    data["quality"] = {"on_flag": "drop", "min_chain_agreement": (scores[0] + scores[-1]) / 2}
    path = tmp_path_factory.mktemp("cfg") / "drop.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def dropped(raw, drop_yaml, tmp_path_factory):
    """``vitonprep build`` with the drop policy, one sample per shard (the CLI's output and exit code)."""
    out = tmp_path_factory.mktemp("dropped") / "shards"
    res = CliRunner().invoke(app, ["build", str(raw), str(out), "--pipeline", str(drop_yaml),
                                   "--samples-per-shard", "1", "--sheet", "0"])
    return out, res


def test_meta_carries_the_verdict_vitonprep_quality_gives_on_the_written_shard(kept, tmp_path):
    out, report = kept
    metas = _metas(out)
    assert len(metas) == len(PERSONS) and not report.failures
    for meta in metas.values():
        q = meta["quality"]
        assert set(q) == {"flags", "scores"} and isinstance(q["flags"], list)
        assert all(set(f) == {"check", "reason"} and f["check"] in CHECKS and f["reason"] for f in q["flags"])
        assert q["scores"] and set(q["scores"]) <= set(CHECKS)
        assert all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in q["scores"].values())
    # `vitonprep quality --config` with the build's own pipeline YAML: the same report, sample by sample
    cfg_yaml = tmp_path / "pipeline.yaml"
    shutil.copy(PIPELINES_DIR / "default.yaml", cfg_yaml)
    res = CliRunner().invoke(app, ["quality", str(out), "--config", str(cfg_yaml), "--json"])
    assert res.exit_code == 0, res.output
    found = json.loads(res.stdout[res.stdout.index("{"):res.stdout.rindex("}") + 1])
    assert {r["key"]: r["quality"] for r in found["results"]} == {k: m["quality"] for k, m in metas.items()}
    # the counts the closing table prints come from the stats files and agree with the samples
    flagged = [k for k, m in metas.items() if m["quality"]["flags"]]
    assert (report.quality.checked, report.quality.flagged, report.quality.dropped) == (3, len(flagged), 0)
    assert sum(read_stats(out, i)["quality"]["checked"] for i in range(report.nshards)) == 3


def test_members_decoded_on_read_are_what_decode_sample_gives(kept):
    for key, members in samples_by_key(kept[0]).items():
        lazy, eager = quality_stage.DecodedOnRead(members, key), decode_sample(members, key)
        assert sorted(lazy) == sorted(eager) and len(lazy) == len(eager) and "nothing" not in lazy
        for name, value in eager.items():
            assert lazy.get(name) is lazy[name]  # decoded once, then kept
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(lazy[name], value)
            else:
                assert lazy[name] == value


def test_a_photo_stored_as_its_file_is_the_canvas_its_member_decodes_to(raw):
    """The quality stage takes such photos from the context instead of decoding them: that must be exact."""
    pipe = Pipeline.from_config(load_pipeline_config("default"))
    stored = 0
    for item in plan_raw(raw).items:
        ctx = SampleContext(item)
        pipe.stages[0](ctx)  # load
        for jpeg, canvas in ((ctx.image_jpeg, ctx.image), (ctx.cloth_jpeg, ctx.cloth)):
            if jpeg:
                stored += 1
                np.testing.assert_array_equal(canvas, codecs.decode_rgb(jpeg))
    assert stored == 2 * len(PERSONS)  # the bundled photos are canvas-sized JPEGs: every one takes that path


def test_quality_is_the_last_key_of_the_meta_record_and_replaces_an_earlier_one():
    meta = {"schema_version": 1, "key": "k", "quality": {"flags": [], "scores": {}}, "source": {}}
    got = with_quality(meta, {"flags": [{"check": "orientation", "reason": "r"}], "scores": {"orientation": 0.1}})
    assert list(got) == ["schema_version", "key", "source", "quality"]
    assert got["quality"]["flags"] == [{"check": "orientation", "reason": "r"}]
    # a rebuild never keeps the input's verdict: it judged other maps
    rebuilt = carry_over_meta({**meta, "producers": {}}, {"key": "k", "producers": {}}, {"dataset": "d"})
    assert "quality" not in rebuilt


def test_enabled_false_builds_the_shards_of_a_build_without_the_stage(raw, kept, tmp_path):
    cfg = load_pipeline_config("default", {"samples_per_shard": 2, "quality.enabled": False})
    assert "quality" not in [s.name for s in Pipeline.from_config(cfg).stages]
    report = build_dataset(cfg, raw, tmp_path / "off")
    assert report.quality is None and "quality" not in read_stats(tmp_path / "off", 0)
    on, off = samples_by_key(kept[0]), samples_by_key(tmp_path / "off")
    assert sorted(on) == sorted(off)
    for key, members in off.items():
        assert {m: d for m, d in members.items() if m != "meta.json"} == \
               {m: d for m, d in on[key].items() if m != "meta.json"}
        meta_on = json.loads(on[key]["meta.json"])
        # the meta without the stage is byte for byte the meta with it, minus its verdict
        assert members["meta.json"] == codecs.encode_json({k: v for k, v in meta_on.items() if k != "quality"})


def test_on_flag_drop_records_flagged_samples_as_quality_failures(raw, kept, drop_yaml, dropped):
    out, res = dropped
    assert res.exit_code == 0, res.output
    cfg = load_pipeline_config(drop_yaml)
    assert cfg.quality.on_flag == "drop"
    # what the real checker says, with the drop thresholds, about each sample the keep build wrote
    verdicts = {k: check_sample(decode_sample(m, k), cfg.quality.thresholds)
                for k, m in samples_by_key(kept[0]).items()}
    flagged = {k: r for k, r in verdicts.items() if r.flags}
    assert 0 < len(flagged) < len(PERSONS), {k: r.to_dict() for k, r in verdicts.items()}
    assert sorted(samples_by_key(out)) == sorted(set(verdicts) - set(flagged))
    failures = [f for tar in list_shards(out) for f in read_stats(out, int(tar.name[:5]))["failures"]]
    assert sorted(f["key"] for f in failures) == sorted(flagged)
    person_file = {k: m["person_file"] for k, m in _metas(kept[0]).items()}
    for f in failures:
        assert f["stage"] == "quality" and f["source"] == str(raw / person_file[f["key"]])
        assert f["reason"] == "; ".join(f"{g.check}: {g.reason}" for g in flagged[f["key"]].flags)
    # the closing table: flagged samples per check, how many were dropped
    assert f"{len(flagged)} flagged" in res.output and f"{len(flagged)} dropped" in res.output
    assert "arm_chain" in res.output and "failures" in res.output


def test_a_killed_drop_build_resumes_to_the_same_shards(raw, drop_yaml, dropped, tmp_path, monkeypatch):
    cfg = load_pipeline_config(drop_yaml, {"samples_per_shard": 1})
    fault = tmp_path / "fault"
    arm_exit_once(monkeypatch, fault)  # the first shard task to delete it dies before writing its shard
    out = tmp_path / "out"
    first = build_dataset(cfg, raw, out, BuildOptions(workers=2, max_shard_retry=0))
    # the dead worker's shard is not made (a pool losing a worker may lose another in-flight shard with it)
    assert not fault.exists() and 1 <= len(first.failed_shards) < len(PERSONS)
    again = build_dataset(cfg, raw, out, BuildOptions(workers=2))
    assert again.failed_shards == {} and again.skipped_shards == len(PERSONS) - len(first.failed_shards)
    ref = dropped[0]
    for tar in list_shards(ref):
        assert (out / tar.name).read_bytes() == tar.read_bytes()
        idx = int(tar.name[:5])
        assert read_stats(out, idx)["failures"] == read_stats(ref, idx)["failures"]
        assert read_stats(out, idx)["quality"] == read_stats(ref, idx)["quality"]
    assert again.quality.dropped == len([f for f in again.failures if f.stage == "quality"]) > 0


def test_a_rebuild_judges_its_own_maps_and_never_keeps_the_input_verdict(kept, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(kept[0], src)
    samples = list(iter_tar_samples(list_shards(src)[0]))
    stale = {"flags": [{"check": "orientation", "reason": "stale verdict"}], "scores": {"orientation": -1.0}}
    victim = samples[0]
    victim.members["meta.json"] = codecs.encode_json(with_quality(json.loads(victim.members["meta.json"]), stale))
    write_shard(src, 0, samples)
    cfg = load_pipeline_config("default", {"samples_per_shard": 2})
    build_dataset(cfg, src, tmp_path / "again")
    want, got = _metas(kept[0]), _metas(tmp_path / "again")
    assert {k: m["quality"] for k, m in got.items()} == {k: m["quality"] for k, m in want.items()}
    off = load_pipeline_config("default", {"samples_per_shard": 2, "quality.enabled": False})
    build_dataset(off, src, tmp_path / "unchecked")
    assert not [k for k, m in _metas(tmp_path / "unchecked").items() if "quality" in m]


def test_the_quality_stage_ends_the_pipeline_and_reads_the_encoded_sample():
    stages = Pipeline.from_config(load_pipeline_config("default")).stages
    assert [s.name for s in stages][-2:] == ["encode", "quality"]
    assert "sample" in stages[-1].reads and stages[-2].writes == ("sample",)


def test_one_face_detector_per_stage(monkeypatch):
    made = []

    class Counted(quality_stage.GarmentFaces):
        def __init__(self):
            made.append(self)
            super().__init__()

    monkeypatch.setattr(quality_stage, "GarmentFaces", Counted)
    stage = QualityStage(QualityPolicy())
    stage.setup()
    stage.setup()  # a pipeline set up twice keeps its detector
    assert len(made) == 1 and stage.faces is made[0]
    stage.close()
    assert stage.faces is None


@pytest.mark.parametrize("section, match", [
    ({"on_flag": "maybe"}, r"quality\.on_flag: 'maybe' is not one of keep, drop"),
    ({"enabled": "yes"}, r"quality\.enabled: expected true or false"),
    ({"min_chain_agreemnt": 0.5}, r"quality\.min_chain_agreemnt: unknown setting"),
    ({"max_agn_body": "high"}, r"quality\.max_agn_body: expected float"),
    ({"max_agn_body": 10 ** 400}, r"quality\.max_agn_body: expected float \(finite\), got 1000"),
    ({"max_agn_body": float("nan")}, r"quality\.max_agn_body: expected float \(finite\), got nan"),
    ("drop", r"quality: expected a mapping"),
])
def test_a_wrong_quality_section_is_refused_naming_the_key(tmp_path, section, match):
    data = yaml.safe_load((PIPELINES_DIR / "default.yaml").read_text())
    data["quality"] = section
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=match):
        load_pipeline_config(path)
    res = CliRunner().invoke(app, ["build", str(tmp_path), str(tmp_path / "out"), "--pipeline", str(path)])
    assert res.exit_code == 2 and str(path) in res.output.replace("\n", "")


@pytest.mark.parametrize("name", ["default", "vitonhd-reference"])
def test_the_shipped_pipelines_keep_flagged_samples_with_the_documented_thresholds(name):
    cfg = load_pipeline_config(name)
    assert cfg.quality == QualityPolicy(enabled=True, on_flag="keep", thresholds=QualityConfig())
    # the flat YAML form round-trips, thresholds included
    assert load_pipeline_config(name, {"quality": cfg.to_dict()["quality"]}).quality == cfg.quality
    # overrides reach the policy and the thresholds
    over = load_pipeline_config(name, {"quality.on_flag": "drop", "quality.max_agn_body": 0.5})
    assert (over.quality.on_flag, over.quality.thresholds.max_agn_body) == ("drop", 0.5)


def test_the_builds_export_says_how_many_flagged_samples_it_left_out(raw, drop_yaml, tmp_path):
    """``build --export-vitonhd`` exports as ``vitonprep export`` does (flagged samples left out) and says so."""
    data = yaml.safe_load(drop_yaml.read_text())
    data["quality"]["on_flag"] = "keep"
    keep_yaml = tmp_path / "keep.yaml"
    keep_yaml.write_text(yaml.safe_dump(data))
    out, export = tmp_path / "shards", tmp_path / "vitonhd"
    res = CliRunner().invoke(app, ["build", str(raw), str(out), "--pipeline", str(keep_yaml), "--sheet", "0",
                                   "--export-vitonhd", str(export), "-j", "1"])
    assert res.exit_code == 0, res.output
    flagged = sorted(k for k, m in _metas(out).items() if m["quality"]["flags"])
    assert 0 < len(flagged) < len(PERSONS)
    said = res.output.replace("\n", " ")
    assert f"exported {len(PERSONS) - len(flagged)} samples" in said
    assert f"left out {len(flagged)} flagged samples" in said
    exported = {p.stem for p in (export / "train" / "image").iterdir()}
    assert len(exported) == len(PERSONS) - len(flagged), exported
    assert exported.isdisjoint(k.split("__")[0] for k in flagged)


def test_a_sample_the_checks_cannot_read_is_a_recorded_failure_not_a_failed_shard(raw, tmp_path, monkeypatch):
    """Whatever check_sample still raises (its checks' own errors are flags) ends one sample, never the shard."""
    real = quality_stage.check_sample
    persons = {}

    def check(decoded, *args):
        person = Path(decoded["meta"]["person_file"]).name
        persons[person] = persons.get(person, 0) + 1
        if person == PERSONS[0]:
            raise RuntimeError("a photo model failed")
        return real(decoded, *args)

    monkeypatch.setattr(quality_stage, "check_sample", check)
    out = tmp_path / "out"
    result = build_dataset(load_pipeline_config("default", {"samples_per_shard": 3}), raw, out)
    assert result.failed_shards == {} and persons[PERSONS[0]] == 1  # not retried: a sample failure
    assert [(f.stage, f.reason) for f in result.failures] == [
        ("quality", "could not be checked: RuntimeError: a photo model failed")]
    metas = _metas(out)
    assert len(metas) == len(PERSONS) - 1 and PERSONS[0] not in {Path(m["person_file"]).name for m in metas.values()}
