"""`vitonprep quality` and the quality config: exit codes, the JSON report, YAML thresholds."""

from __future__ import annotations

import io
import json
import tarfile

import pytest
from typer.testing import CliRunner

from vitonprep.cli import app
from vitonprep.config import PIPELINES_DIR
from vitonprep.errors import ConfigError
from vitonprep.quality import QualityConfig, load_quality_config, quality_config_from_mapping
from vitonprep.shards import iter_tar_samples, list_shards


def _person_as_garment(src, dst):
    """A copy of the shards whose first sample has its person photo in the cloth member."""
    dst.mkdir()
    for i, tar in enumerate(list_shards(src)):
        with tarfile.open(dst / tar.name, "w") as out:
            for j, s in enumerate(iter_tar_samples(tar)):
                for suffix, data in s.members.items():
                    if i == 0 and j == 0 and suffix == "cloth.jpg":
                        data = s.members["image.jpg"]
                    info = tarfile.TarInfo(f"{s.key}.{suffix}")
                    info.size = len(data)
                    out.addfile(info, io.BytesIO(data))
    return dst


def test_cli_sound_shards(vitonhd_shards):
    res = CliRunner().invoke(app, ["quality", str(vitonhd_shards), "--strict", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout[res.stdout.index("{"):res.stdout.rindex("}") + 1])
    assert report["samples"] == 3 and report["flagged"] == 0
    assert all(set(r["quality"]) == {"flags", "scores"} for r in report["results"])


def test_cli_flagged_sample(vitonhd_shards, tmp_path):
    bad = _person_as_garment(vitonhd_shards, tmp_path / "bad")
    res = CliRunner().invoke(app, ["quality", str(bad)])
    assert res.exit_code == 0, res.output
    assert "garment_face" in res.output and "holds a person" in res.output
    res = CliRunner().invoke(app, ["quality", str(bad), "--strict"])
    assert res.exit_code == 1


def test_cli_config_yaml(vitonhd_shards, tmp_path):
    cfg = tmp_path / "pipeline.yaml"
    cfg.write_text("quality:\n  on_flag: keep\n  min_hip_shoulder_ratio: 0.99\n")
    res = CliRunner().invoke(app, ["quality", str(vitonhd_shards), "--config", str(cfg), "--strict"])
    assert res.exit_code == 1 and "hip_shoulder_ratio" in res.output
    cfg.write_text("quality:\n  min_hip_ratio: 0.5\n")
    res = CliRunner().invoke(app, ["quality", str(vitonhd_shards), "--config", str(cfg)])
    assert res.exit_code == 2 and "min_hip_ratio" in res.output


def test_cli_refuses_a_folder_without_shards(tmp_path):
    res = CliRunner().invoke(app, ["quality", str(tmp_path)])
    assert res.exit_code == 2


def test_config_checks_keys_and_types(tmp_path):
    assert quality_config_from_mapping({"max_agn_body": 1}).max_agn_body == 1.0
    with pytest.raises(ConfigError, match="unknown"):
        quality_config_from_mapping({"max_agn_bodyy": 0.5})
    with pytest.raises(ConfigError, match="expected bool"):
        quality_config_from_mapping({"detect_garment_faces": "yes"})
    with pytest.raises(ConfigError, match="expected int"):
        quality_config_from_mapping({"max_crossing_limbs": 0.5})
    path = tmp_path / "q.yaml"
    path.write_text("max_garment_face: 0.7\n")
    assert load_quality_config(path) == QualityConfig(max_garment_face=0.7)


@pytest.mark.parametrize("name", ["default", "vitonhd-reference"])
def test_the_shipped_pipelines_are_quality_configs(name):
    """A pipeline YAML's quality section (policy keys beside the thresholds) is what `vitonprep quality --config`
    reads: the shipped ones say enabled/on_flag and resolve to the documented thresholds."""
    path = PIPELINES_DIR / f"{name}.yaml"
    assert "enabled:" in path.read_text() and "on_flag:" in path.read_text()
    assert load_quality_config(path) == QualityConfig()


def test_the_pipeline_config_reads_thresholds_without_loading_the_checks():
    """vitonprep.config needs only quality.config: the package's other names load on first use (OpenCV and
    mediapipe's wrappers stay out of every config reader), and every exported name resolves."""
    import subprocess
    import sys

    code = ("import sys, vitonprep.config; print('cv2' in sys.modules, 'vitonprep.quality.sample' in sys.modules); "
            "import vitonprep.quality as q; print(all(getattr(q, n) is not None for n in q.__all__))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False", "True"]
