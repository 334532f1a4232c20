"""`vitontrain tryon`: one raw photo + one garment through vitonprep's default pipeline and the tiny model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from vitontrain.cli import app

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "pipelines/train/tiny.yaml"
PERSON = ROOT / "data/samples/person/00034_00.jpg"
CLOTH = ROOT / "data/samples/cloth/04469_00.jpg"
runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_tryon_library_runs_the_vitonprep_pipeline():
    from vitontrain.sampling import SamplingConfig, load_inference_model
    from vitontrain.tryon import tryon

    torch.manual_seed(0)
    model = load_inference_model(TINY, None, random_init=True)
    result = tryon(model, PERSON, CLOTH, SamplingConfig(sampler="ddim", steps=2), 128, 128)
    assert result.image.shape == (128, 128, 3) and result.image.dtype == np.uint8
    s = result.sample
    # the pair went through the default pipeline: derived maps are present, at the contract's 768x1024
    assert s["__key__"] == "00034_00__04469_00" and s["meta"]["pair"] == "unpaired"
    assert s["agn"].shape == (1024, 768, 3) and s["agn_mask"].dtype == bool and s["agn_mask"].any()
    assert s["meta"]["producers"]["image_densepose"]["approximate"] is True


def test_tryon_cli(tmp_path):
    res = runner.invoke(app, ["tryon", str(tmp_path / "nobody.jpg"), str(CLOTH), "--config", str(TINY),
                              "--random-init"])
    assert res.exit_code == 2 and "person photo not found" in res.output
    res = runner.invoke(app, ["tryon", str(PERSON), str(CLOTH), "--config", str(TINY),
                              "--checkpoint", str(tmp_path / "missing.ckpt")])
    assert res.exit_code == 2 and "checkpoint not found" in res.output
    # a garment photo as the person: vitonprep rejects it, and the message names the stage
    res = runner.invoke(app, ["tryon", str(CLOTH), str(CLOTH), "--config", str(TINY), "--random-init",
                              "--steps", "2", "--height", "128", "--width", "128", "-o", str(tmp_path / "x.jpg")])
    assert res.exit_code == 1 and "rejected the pair" in res.output and "no person" in res.output
    assert not (tmp_path / "x.jpg").exists()
    out = tmp_path / "me.png"
    res = runner.invoke(app, ["tryon", str(PERSON), str(CLOTH), "--config", str(TINY), "--random-init",
                              "--steps", "2", "--sampler", "ddim", "--height", "128", "--width", "128",
                              "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert Image.open(out).size == (128, 128)
