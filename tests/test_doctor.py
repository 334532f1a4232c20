"""Weight lookup (vitonprep.weights), `vitonprep doctor`, and the reference pipeline's missing-weights behaviour."""

from __future__ import annotations

import hashlib
import json

import pytest
from typer.testing import CliRunner

from vitonprep import weights as W
from vitonprep.config import PIPELINES_DIR, load_pipeline_config
from vitonprep.errors import ConfigError

SPEC = W.WeightSpec("test-model", "test_model.pth", "https://example.org/test-model", "MIT")
REFERENCE_FILES = ("body_pose_model.pth", "exp-schp-201908261155-lip.pth", "exp-schp-201908301523-atr.pth",
                   "model_final_162be9.pkl", "sam_vit_h_4b8939.pth")


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    monkeypatch.delenv(W.ENV_VAR, raising=False)


def test_search_order_explicit_then_dir_then_env(tmp_path, monkeypatch):
    a, b, c = (tmp_path / n for n in "abc")
    for d in (a, b, c):
        d.mkdir()
        (d / SPEC.filename).write_bytes(d.name.encode())
    monkeypatch.setenv(W.ENV_VAR, str(c))
    assert W.find_weights(SPEC, a / SPEC.filename, b) == a / SPEC.filename
    assert W.find_weights(SPEC, a, b) == a / SPEC.filename  # a folder holding the official name
    assert W.find_weights(SPEC, None, b) == b / SPEC.filename
    assert W.find_weights(SPEC, None, None) == c / SPEC.filename
    assert W.find_weights(SPEC, None, tmp_path / "nowhere") == c / SPEC.filename


def test_missing_names_file_source_and_every_place(tmp_path, monkeypatch):
    monkeypatch.setenv(W.ENV_VAR, str(tmp_path / "env"))
    with pytest.raises(W.MissingWeightsError) as info:
        W.find_weights(SPEC, None, tmp_path / "dir")
    msg = str(info.value)
    assert "test_model.pth" in msg and "https://example.org/test-model" in msg
    assert str(tmp_path / "dir" / SPEC.filename) in msg and str(tmp_path / "env" / SPEC.filename) in msg
    assert isinstance(info.value, FileNotFoundError)
    monkeypatch.delenv(W.ENV_VAR)
    with pytest.raises(W.MissingWeightsError, match="Looked in: nowhere"):
        W.find_weights(SPEC)


def test_explicit_path_that_does_not_exist_does_not_fall_through(tmp_path):
    (tmp_path / SPEC.filename).write_bytes(b"x")
    with pytest.raises(W.MissingWeightsError, match="typo.pth"):
        W.find_weights(SPEC, tmp_path / "typo.pth", tmp_path)


def test_register_weights_refuses_conflicts(monkeypatch):
    monkeypatch.setattr(W, "WEIGHTS", {})
    assert W.register_weights(SPEC) is SPEC
    W.register_weights(SPEC)  # same spec again: fine (modules may be re-imported)
    with pytest.raises(ValueError, match="registered twice"):
        W.register_weights(W.WeightSpec(SPEC.name, "other.pth", SPEC.source, SPEC.licence))


def _placeholders(folder):
    folder.mkdir(exist_ok=True)
    for name in REFERENCE_FILES:
        (folder / name).write_bytes(b"placeholder " + name.encode())
    return folder


def test_diagnose_without_and_with_weights(tmp_path):
    rep = W.diagnose(tmp_path / "empty", hash_files=False)
    by_name = {b.name: b for b in rep.backends}
    for name in ("pose-mediapipe-blazepose", "parsing-heuristic-mediapipe", "cloth-mask-opencv"):
        assert by_name[name].usable and by_name[name].licence
    for name, file in (("pose-openpose-body", "body_pose_model.pth"),
                       ("parsing-schp", "exp-schp-201908261155-lip.pth"),
                       ("cloth-mask-sam", "sam_vit_h_4b8939.pth")):
        b = by_name[name]
        assert not b.usable and file in b.problem
        assert [f.spec.filename for f in b.weights if f.path is None] == [file]
    folder = _placeholders(tmp_path / "w")
    rep = W.diagnose(folder, hash_files=True)
    by_name = {b.name: b for b in rep.backends}
    schp = by_name["parsing-schp"]
    assert schp.usable and [f.spec.filename for f in schp.weights] == ["exp-schp-201908261155-lip.pth",
                                                                       "exp-schp-201908301523-atr.pth"]
    f = schp.weights[0]
    content = b"placeholder exp-schp-201908261155-lip.pth"
    assert f.size == len(content) and f.sha256 == hashlib.sha256(content).hexdigest()
    assert by_name["pose-openpose-body"].usable and by_name["cloth-mask-sam"].usable
    assert "CMU" in by_name["pose-openpose-body"].licence
    listed = {w.spec.filename: w for w in rep.weights}
    assert listed["sam_vit_h_4b8939.pth"].path == folder / "sam_vit_h_4b8939.pth"
    assert listed["parsing_lip.onnx"].path is None
    assert rep.packages["torch"] and "numpy" in rep.packages


def test_diagnose_flags_a_wrong_hash(tmp_path, monkeypatch):
    spec = W.WeightSpec("test-hash", "h.bin", "https://example.org", "MIT", sha256="0" * 64)
    monkeypatch.setitem(W.WEIGHTS, spec.name, spec)
    (tmp_path / "h.bin").write_bytes(b"abc")
    listed = {w.spec.name: w for w in W.diagnose(tmp_path, hash_files=True).weights}
    assert listed["test-hash"].sha256_ok is False
    assert listed["test-hash"].sha256 == hashlib.sha256(b"abc").hexdigest()


def test_reference_pipeline_fails_before_any_image_without_weights(tmp_path):
    from vitonprep.build import build_dataset

    cfg = load_pipeline_config("vitonhd-reference", {"weights_dir": str(tmp_path / "empty")})
    out = tmp_path / "out"
    with pytest.raises(ConfigError) as info:
        build_dataset(cfg, tmp_path / "raw-does-not-matter", out)
    msg = str(info.value)
    assert "stages.pose" in msg and "body_pose_model.pth" in msg and "pytorch-openpose" in msg
    assert not out.exists()


def test_reference_pipeline_selects_every_reference_backend(tmp_path):
    from vitonprep.stages import Pipeline

    cfg = load_pipeline_config("vitonhd-reference", {"weights_dir": str(_placeholders(tmp_path / "w"))})
    s = cfg.stages
    assert (s.pose.backend, s.parsing.backend, s.densepose.backend, s.cloth_mask.backend) == (
        "pose-openpose-body", "parsing-schp", "densepose-rcnn-r50-fpn", "cloth-mask-sam")
    pipe = Pipeline.from_config(cfg)  # every file is found; nothing is loaded yet
    assert [st.producer.backend for st in pipe.stages if hasattr(st, "producer")][:2] == [
        "pose-openpose-body", "person-mediapipe"]


def test_doctor_cli(tmp_path):
    from vitonprep.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["doctor", "--no-hash", "--json", "--weights-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    names = {b["name"]: b for b in data["backends"]}
    assert names["cloth-mask-opencv"]["usable"] and not names["parsing-schp"]["usable"]
    res = runner.invoke(app, ["doctor", "--no-hash", "--pipeline", "vitonhd-reference", "--weights-dir",
                              str(tmp_path)])
    assert res.exit_code == 1
    res = runner.invoke(app, ["doctor", "--no-hash", "--pipeline", "default"])
    assert res.exit_code == 0, res.output
    assert "back-ends" in res.stdout and "weight files" in res.stdout and "selected by the pipeline" in res.stdout


def test_doctor_uses_the_pipelines_explicit_paths(tmp_path):
    from vitonprep.cli import app

    (tmp_path / "my_body.pth").write_bytes(b"x")
    yaml_text = (PIPELINES_DIR / "vitonhd-reference.yaml").read_text()
    yaml_text = yaml_text.replace("backend: pose-openpose-body", "backend: pose-openpose-body\n    params: {weights: "
                                  + str(tmp_path / "my_body.pth") + "}")
    (tmp_path / "p.yaml").write_text(yaml_text)
    res = CliRunner().invoke(app, ["doctor", "--no-hash", "--json", "--pipeline", str(tmp_path / "p.yaml")])
    data = json.loads(res.stdout)
    pose = {b["name"]: b for b in data["backends"]}["pose-openpose-body"]
    assert pose["selected"] and pose["usable"] and pose["weights"][0]["path"] == str(tmp_path / "my_body.pth")


def test_doctor_tables_are_readable_at_80_columns(tmp_path):
    """Issue 19: doctor's tables wrapped names, URLs and licences into fragments at 80 columns. Now no line is wider
    than 80 unless it is one unbreakable word (a long URL), and every name, file, URL, path and digest is whole."""
    from vitonprep.cli import app

    wdir = tmp_path / "weights-folder-with-a-rather-long-name-so-that-its-path-is-long"
    wdir.mkdir()
    (wdir / "model_final_162be9.pkl").write_bytes(b"not the real weights")  # found, and its sha256 differs
    res = CliRunner().invoke(app, ["doctor", "--weights-dir", str(wdir), "--pipeline", "default"],
                             terminal_width=80, env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    text = res.stdout
    lines = text.splitlines()
    assert [ln for ln in lines if len(ln) > 80 and len(ln.split()) > 1] == []
    rep = W.diagnose(wdir, hash_files=True)
    for b in rep.backends:  # one table row per back-end: stage, whole name, usable
        assert any(ln.split()[:3] in ([b.kind, b.name, "yes" if b.usable else "no"],
                                      [b.kind, b.name, "*"]) for ln in lines if ln.split()), b.name
    words = set(text.replace(",", " ").split())
    for f in rep.weights:
        assert f.spec.filename in words
        for url in (w.strip("():;,") for w in f.spec.source.split() if "://" in w):
            assert url in words or f"({url})" in words or f"{url})" in words, url
    found = next(f for f in rep.weights if f.path)
    assert str(found.path) in words and found.sha256 in words and found.spec.sha256 in text
    assert "densepose-rcnn-r50-fpn  model_final_162be9.pkl  found, 20 B, sha256 differs" in text
