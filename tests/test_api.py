"""The public library API (vitonprep.api and the package root) on the bundled samples."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import vitonprep
from vitonprep import api
from vitonprep.errors import ConfigError, SampleError
from vitonprep.shards import Failure, Sample, iter_tar_samples, list_shards

from conftest import DATA, raw_from_bundled_pairs

PERSONS = ("00034_00.jpg", "00035_00.jpg")


def _members(shard_dir: Path) -> dict[str, dict[str, bytes]]:
    return {s.key: s.members for tar in list_shards(shard_dir) for s in iter_tar_samples(tar)}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path, api.BuildReport]:
    raw = raw_from_bundled_pairs(tmp_path_factory.mktemp("api") / "raw", PERSONS)
    out = raw.parent / "shards"
    return raw, out, api.build(raw, out, pipeline="default", overrides={"samples_per_shard": 1})


def test_import_root_is_light_and_names_resolve():
    code = ("import sys, vitonprep; heavy = [m for m in ('cv2', 'torch', 'mediapipe', 'vitonprep.api', "
            "'vitonprep.stages') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    from vitonprep.backends.devices import resolve_device
    from vitonprep.config import PipelineConfig, apply_dotted_overrides, config_from_mapping
    from vitonprep.derive.densepose import PARULA_RGB

    assert vitonprep.api is api
    assert vitonprep.prepare_pair is api.prepare_pair and vitonprep.convert_samples is api.convert_samples
    assert vitonprep.load_pipeline is api.load_pipeline
    assert (vitonprep.PipelineConfig, vitonprep.config_from_mapping, vitonprep.apply_dotted_overrides) == (
        PipelineConfig, config_from_mapping, apply_dotted_overrides)
    assert vitonprep.resolve_device is resolve_device and vitonprep.PARULA_RGB is PARULA_RGB
    assert issubclass(vitonprep.ConfigError, vitonprep.VitonprepError) and vitonprep.SampleError is SampleError
    assert set(vitonprep.__all__) <= set(dir(vitonprep))
    with pytest.raises(AttributeError, match="no_such_name"):
        vitonprep.no_such_name  # noqa: B018


def test_load_pipeline_overrides_and_errors():
    cfg = api.load_pipeline("default", {"persons.several": "reject", "category": "dresses"})
    assert (cfg.persons.several, cfg.category) == ("reject", "dresses")
    assert api.load_pipeline(Path(cfg_path := DATA.parent / "pipelines/default.yaml")) == api.load_pipeline("default")
    assert cfg_path.is_file()
    with pytest.raises(ConfigError, match="colour"):
        api.load_pipeline("default", {"colour": 1})
    with pytest.raises(ConfigError, match="no-such-pipeline"):
        api.load_pipeline("no-such-pipeline")


def test_build_validate_export(built, tmp_path):
    raw, out, report = built
    assert (report.nsamples, report.nplanned, report.nshards, report.failures) == (2, 2, 2, [])
    assert sorted(_members(out)) == ["00034_00__04469_00", "00035_00__04743_00"]
    assert api.validate(out).ok
    exported = api.export(out, tmp_path / "vitonhd", "vitonhd")
    # the build's quality stage marks samples, and export leaves the flagged ones out
    flagged = sorted(k for k, m in _members(out).items() if json.loads(m["meta.json"])["quality"]["flags"])
    assert exported.nsamples == 2 - len(flagged) and not exported.refused
    assert sorted(r.key for r in exported.flagged) == flagged
    assert (tmp_path / "vitonhd/test_pairs.txt").is_file() or (tmp_path / "vitonhd/train_pairs.txt").is_file()
    again = api.build(raw, out, overrides={"samples_per_shard": 1})  # a rerun resumes: nothing is rebuilt
    assert (again.nsamples, again.skipped_shards) == (2, 2)


def test_build_refuses_bad_outputs_and_options(built, tmp_path):
    raw, out, _ = built
    with pytest.raises(ConfigError, match="equals RAW"):
        api.build(raw, raw)
    with pytest.raises(ConfigError, match="worker"):
        api.build(raw, tmp_path / "o", worker=2)  # misspelt option (workers)
    with pytest.raises(ConfigError, match="lies inside RAW"):
        api.build(raw, raw / "inside", overwrite=True)
    with pytest.raises(ConfigError, match="no_such"):
        api.export(out, tmp_path / "e", "no_such")
    with pytest.raises(ConfigError, match="equals SHARDS"):
        api.export(out, out)


def test_prepare_pair_equals_the_built_sample(built):
    raw, out, _ = built
    sample = api.prepare_pair(raw / "person/00034_00.jpg", raw / "cloth/04469_00.jpg")
    assert isinstance(sample, Sample) and sample.key == "00034_00__04469_00"
    assert sample.members == _members(out)[sample.key]
    with pytest.raises(FileNotFoundError, match="garment photo"):
        api.prepare_pair(raw / "person/00034_00.jpg", raw / "cloth/missing.jpg")


def test_prepare_pair_rejection_names_the_stage(tmp_path):
    from PIL import Image

    Image.new("RGB", (384, 512), (200, 200, 200)).save(tmp_path / "empty.jpg")  # no person in it
    with pytest.raises(SampleError) as info:
        api.prepare_pair(tmp_path / "empty.jpg", DATA / "samples/cloth/04469_00.jpg")
    assert info.value.stage


def test_convert_and_convert_samples_agree(tmp_path):
    out = tmp_path / "official"
    report = api.convert("vitonhd", DATA / "vitonhd-official", out, samples_per_shard=2)
    assert (report.nsamples, report.nshards, report.failures) == (3, 2, [])
    in_memory = list(api.convert_samples("vitonhd", DATA / "vitonhd-official"))
    assert all(isinstance(s, Sample) for s in in_memory)
    assert {s.key: s.members for s in in_memory} == _members(out)
    # a single split folder read as "train" finds no train_pairs.txt: each person is a plan failure
    as_train = list(api.convert_samples("vitonhd", DATA / "vitonhd-official", split="train"))
    assert len(as_train) == 3 and all(isinstance(f, Failure) and f.stage == "plan" for f in as_train)
    with pytest.raises(ConfigError, match="equals SRC"):
        api.convert("vitonhd", out, out)
    with pytest.raises(ConfigError, match="unknown dataset"):
        next(api.convert_samples("nope", DATA / "vitonhd-official"))


def test_convert_samples_yields_failures(tmp_path):
    import shutil

    root = tmp_path / "vhd"
    shutil.copytree(DATA / "vitonhd-official", root)
    (root / "image/03615_00.jpg").write_bytes(b"not a jpeg")
    items = list(api.convert_samples("vitonhd", root))
    failures = [i for i in items if isinstance(i, Failure)]
    assert len(failures) == 1 and failures[0].key.startswith("03615_00")
    assert sum(isinstance(i, Sample) for i in items) == 2
