"""Every YAML in pipelines/ loads, resolves its back-ends and passes the stage read/write check."""

from pathlib import Path

import pytest

from vitonprep.config import PIPELINES_DIR, TRAIN_CONFIGS_DIR, load_pipeline_config, pipeline_path, train_config_path
from vitonprep.errors import ConfigError

PIPELINES = sorted(PIPELINES_DIR.glob("*.yaml"))


def test_there_are_pipelines():
    assert PIPELINES


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.name)
def test_pipeline_yaml_instantiates(path, tmp_path, monkeypatch):
    """Offline pipelines build as they are; pipelines with weight files refuse without them, naming the file, and
    build once the files are where --weights-dir says."""
    from vitonprep.stages import Pipeline
    from vitonprep.weights import MissingWeightsError

    monkeypatch.delenv("VITONPREP_WEIGHTS_DIR", raising=False)
    cfg = load_pipeline_config(path, {"weights_dir": str(tmp_path)})
    placed = []
    for _ in range(10):
        try:
            pipe = Pipeline.from_config(cfg)
            break
        except ConfigError as exc:
            missing = exc.__cause__
            assert isinstance(missing, MissingWeightsError), exc
            assert missing.spec.filename in str(exc) and missing.spec.source in str(exc)
            # a placeholder is enough: construction locates weight files, models load on first use
            (tmp_path / missing.spec.filename).write_bytes(b"placeholder")
            placed.append(missing.spec.filename)
    assert [s.name for s in pipe.stages][0] == "load"
    assert bool(placed) == (path.stem == "vitonhd-reference"), placed


def test_unknown_keys_and_types_are_errors(tmp_path):
    text = (PIPELINES_DIR / "default.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text + "colour: blue\n")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['colour'\]"):
        load_pipeline_config(bad)
    bad.write_text(text.replace("samples_per_shard: 50", "samples_per_shard: many"))
    with pytest.raises(ConfigError, match="samples_per_shard: expected int"):
        load_pipeline_config(bad)
    bad.write_text(text.replace("fit: pad", "fit: stretch"))
    with pytest.raises(ConfigError, match="fit"):
        load_pipeline_config(bad)
    with pytest.raises(ConfigError, match="stages.pose.params"):
        from vitonprep.stages import Pipeline

        Pipeline.from_config(load_pipeline_config("default", {"stages.pose.params": {"wings": 2}}))


def test_shipped_configs_are_package_data_with_one_copy_in_git():
    """vitonprep/pipelines (what a wheel ships) is a link to the top-level pipelines/ folder users edit."""
    root = Path(__file__).resolve().parents[1]
    assert (root / "vitonprep/pipelines").is_symlink() and not (root / "pipelines").is_symlink()
    assert PIPELINES_DIR == (root / "pipelines").resolve() and TRAIN_CONFIGS_DIR == PIPELINES_DIR / "train"
    assert pipeline_path("default") == PIPELINES_DIR / "default.yaml"
    assert train_config_path("tiny") == TRAIN_CONFIGS_DIR / "tiny.yaml"
    own = root / "pipelines/train/tiny.yaml"
    assert train_config_path(own) == own and pipeline_path(root / "pipelines/default.yaml").is_file()
    with pytest.raises(FileNotFoundError, match=r"config nope not found .*'stableviton', 'tiny'"):
        train_config_path("nope")
    with pytest.raises(ConfigError, match=r"pipeline nope not found .*'default'"):
        pipeline_path("nope")
