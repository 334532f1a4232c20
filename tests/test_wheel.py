"""The wheel is complete: built from the repository, installed in a fresh venv that cannot see the source tree, it
runs ``vitonprep build`` with the shipped default pipeline and ``vitontrain fit --config tiny`` from a folder
outside the repository.

The fresh venv takes the heavy dependencies (torch, mediapipe, ...) from the project's venv through a ``.pth``
line (a plain path: the editable-install finder that ``.pth`` files of that venv would start is not run), so nothing
is downloaded; the wheel is built from a copy of the package sources, without network or build isolation.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "vitonprep", "vitontrain", "pipelines")
SHIPPED = {f"vitonprep/pipelines/{p.relative_to(ROOT / 'pipelines')}" for p in (ROOT / "pipelines").rglob("*.yaml")}


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 600
         ) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the sources (setuptools' build/ folder would otherwise keep stale modules)."""
    src = tmp_path_factory.mktemp("wheel-src")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(path, src / name)
    dist = tmp_path_factory.mktemp("dist")
    res = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                "-w", str(dist), str(src)], cwd=dist)
    assert res.returncode == 0, res.stderr
    (whl,) = dist.glob("vitonprep-*.whl")
    return whl


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed and the project venv's site-packages as a fallback path."""
    env_dir = tmp_path_factory.mktemp("venv") / "env"
    res = _run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], cwd=env_dir.parent)
    assert res.returncode == 0, res.stderr
    py = env_dir / "bin/python"
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     cwd=env_dir).stdout.strip())
    (site / "_project_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    res = _run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q",
                str(wheel)], cwd=env_dir)
    assert res.returncode == 0, res.stderr
    return env_dir


def _env(venv: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def test_wheel_ships_the_pipelines_and_training_configs(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"vitonprep/pipelines/default.yaml", "vitonprep/pipelines/train/tiny.yaml"} <= SHIPPED <= names
    assert not any(n.startswith(("tests/", "data/", "pipelines/")) for n in names)


def test_installed_wheel_builds_and_trains_outside_the_repository(venv, tmp_path):
    env = _env(venv)
    py = str(venv / "bin/python")
    where = _run([py, "-c", "import vitonprep, vitontrain, vitonprep.config as c; "
                  "print(vitonprep.__file__); print(vitontrain.__file__); print(c.PIPELINES_DIR)"], tmp_path, env)
    assert where.returncode == 0, where.stderr
    for line in where.stdout.split():
        assert Path(line).is_relative_to(venv), where.stdout  # the wheel's copy, not the checkout

    shutil.copytree(ROOT / "data/samples", tmp_path / "photos")
    build = _run([str(venv / "bin/vitonprep"), "build", "photos", "out/shards", "--sheet", "0"], tmp_path, env)
    assert build.returncode == 0, build.stdout + build.stderr
    report = build.stdout + build.stderr  # the CLI draws on stderr
    assert "build (default-offline)" in report and "validate: 5 samples, 0 errors" in report, report
    assert list((tmp_path / "out/shards").glob("*.tar"))  # one per worker: a small build is spread over them

    # the shipped tiny config reads out/shards and writes out/train-tiny, relative to the working folder
    overrides = ["train.max_steps=2", "train.checkpoint_every_n_steps=2", "train.sample_every_n_steps=0",
                 "data.height=64", "data.width=64", "data.batch_size=1", "data.num_workers=0",
                 "data.shuffle_buffer=0", "data.epoch_samples=4"]
    args = [str(venv / "bin/vitontrain"), "fit", "--config", "tiny", "--no-progress"]
    for o in overrides:
        args += ["--set", o]
    fit = _run(args, tmp_path, env)
    assert fit.returncode == 0, fit.stdout + fit.stderr
    ckpts = sorted(p.name for p in (tmp_path / "out/train-tiny/checkpoints").iterdir())
    assert ckpts == ["last.ckpt", "step0000002.ckpt"]
