"""Shared fixtures: the bundled data and shards converted once per session."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data"

#: module-scoped fixtures of the quality tests (built, official, faces): one definition, a fresh copy per module
pytest_plugins = ["helpers.quality_fixtures"]


@pytest.fixture(autouse=True)
def _root_logging_restored():
    """A CLI command run in-process (CliRunner) installs its handler on the root logger (`setup_logging`,
    force=True) and a ``--verbose`` one sets DEBUG; a module- or session-scoped fixture may have done so before this
    test started. Left in place, library log lines would reach later tests' captured stderr. Each test starts with
    only pytest's own handlers at the default level, and gets the root logger back as it found it."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    root.handlers[:] = [h for h in handlers if type(h).__module__.startswith("_pytest")]
    root.setLevel(logging.WARNING)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


def _official_as_shards(tmp_path_factory, name: str, samples_per_shard: int) -> Path:
    """data/vitonhd-official (2021 names, 3 persons, unpaired test pairs) converted to shards."""
    from vitonprep.convert import ConvertConfig, convert_dataset

    out = tmp_path_factory.mktemp("shards") / name
    report = convert_dataset(ConvertConfig("vitonhd", DATA / "vitonhd-official", out,
                                           samples_per_shard=samples_per_shard))
    assert report.nsamples == 3, report.failures
    return out


@pytest.fixture(scope="session")
def samples_shards(tmp_path_factory) -> Path:
    """data/samples built as upper_body with the default pipeline (5 unpaired samples), once per session: read it,
    never write into it."""
    from vitonprep import api

    out = tmp_path_factory.mktemp("samples_build") / "upper"
    report = api.build(DATA / "samples", out)
    assert report.nsamples == 5, report.failures
    return out


@pytest.fixture(scope="session")
def vitonhd_shards(tmp_path_factory) -> Path:
    """data/vitonhd-official in shards of 2 (2 shards)."""
    return _official_as_shards(tmp_path_factory, "vitonhd", 2)


@pytest.fixture(scope="session")
def v3_root(tmp_path_factory) -> Path:
    """A VITON-HD v3 tree (train/ split, paired) made of the v3 reference id 00006_00, as distributed."""
    import json

    import numpy as np
    from PIL import Image

    from vitonprep.derive.body25 import OpenPoseKeypoints
    from vitonprep.derive.pose_from_render import keypoints_from_render

    root = tmp_path_factory.mktemp("v3") / "zalando-hd-resized"
    shutil.copytree(DATA / "vitonhd-v3-reference", root / "train")
    (root / "train_pairs.txt").write_text("00006_00.jpg 00006_00.jpg\n")
    # The bundled JSON of this id is not official (hand-written, a knee below the image): use BODY_25 keypoints
    # recovered from the official openpose_img render instead.
    render = np.asarray(Image.open(root / "train/openpose_img/00006_00_rendered.png").convert("RGB"))
    kp = OpenPoseKeypoints(pose=keypoints_from_render(render))
    (root / "train/openpose_json/00006_00_keypoints.json").write_text(json.dumps(kp.to_json_dict()))
    return root


def raw_from_bundled_pairs(root: Path, persons: tuple[str, ...]) -> Path:
    """A raw folder (person/ + cloth/ + pairs.txt) holding the bundled pairs of ``persons``."""
    (root / "person").mkdir(parents=True)
    (root / "cloth").mkdir()
    lines = [ln for ln in (DATA / "samples/pairs.txt").read_text().splitlines() if ln.split()[0] in persons]
    for ln in lines:
        p, c = ln.split()
        shutil.copy(DATA / "samples/person" / p, root / "person" / p)
        shutil.copy(DATA / "samples/cloth" / c, root / "cloth" / c)
    (root / "pairs.txt").write_text("\n".join(lines) + "\n")
    return root


def copy_shards(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@pytest.fixture(scope="session")
def train_shards(tmp_path_factory) -> Path:
    """data/vitonhd-official as 3 one-sample shards (unpaired samples: set pairs=(paired, unpaired) to train)."""
    return _official_as_shards(tmp_path_factory, "train", 1)


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test: on shared cores OpenMP's multi-thread barriers cost 10x more than they gain."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
