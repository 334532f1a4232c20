"""Every YAML in pipelines/ loads, resolves its back-ends and passes the stage read/write check."""

import pytest

from vitonprep.config import PIPELINES_DIR, load_pipeline_config
from vitonprep.errors import ConfigError

PIPELINES = sorted(PIPELINES_DIR.glob("*.yaml"))


def test_there_are_pipelines():
    assert PIPELINES


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.name)
def test_pipeline_yaml_instantiates(path):
    from vitonprep.stages import Pipeline

    cfg = load_pipeline_config(path)
    pipe = Pipeline.from_config(cfg)
    assert [s.name for s in pipe.stages][0] == "load"


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
