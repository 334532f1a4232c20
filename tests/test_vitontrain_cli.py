"""The `vitontrain` commands a newcomer meets first (issue 19): help at 80 columns, check-data reading as the trainer
does, sample/tryon at the model's own size with progress over the steps, fit's JSON summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import typer
import yaml
from PIL import Image
from typer.core import TyperOption
from typer.testing import CliRunner

from vitontrain.cli import app
from vitontrain.sampling.run import DEFAULT_SIZE, model_size
from vitontrain.train.config import config_to_yaml, load_fit_config

ROOT = Path(__file__).resolve().parents[1]
PERSON = ROOT / "data/samples/person/00034_00.jpg"
CLOTH = ROOT / "data/samples/cloth/04469_00.jpg"
runner = CliRunner()


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("command", ["fit", "sample", "tryon", "evaluate", "check-data", "export-checkpoint"])
def test_help_at_80_columns_shows_every_option_name_whole(command):
    result = runner.invoke(app, [command, "--help"], terminal_width=80, env={"COLUMNS": "80"})
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80, [line for line in lines if len(line) > 80]
    params = typer.main.get_command(app).commands[command].params
    names = [name for p in params if isinstance(p, TyperOption) for name in p.opts + p.secondary_opts]
    words = set(result.output.replace(",", " ").split())
    assert names and [n for n in names if n not in words] == []  # never cut to "--guidance-scale…"


def test_random_init_is_explained_in_help():
    for command in ("sample", "tryon"):
        text = flat(runner.invoke(app, [command, "--help"]).output)
        assert "--random-init" in text and "smoke run" in text and "--no-random-init" not in text


def test_model_size_comes_from_the_config(tmp_path):
    assert model_size(None, "tiny") == (256, 192)
    assert model_size(None, "stableviton") == (512, 384) == model_size(None)
    bare = tmp_path / "model_only.yaml"  # a model section and nothing else: the official size
    tiny = yaml.safe_load((ROOT / "pipelines/train/tiny.yaml").read_text())
    bare.write_text(yaml.safe_dump({"model": tiny["model"]}))
    assert model_size(None, bare) == DEFAULT_SIZE
    # a fit checkpoint: the size its run trained at, whatever --config says
    cfg = load_fit_config("tiny", ["data.shards=[x]", "data.height=128", "data.width=64"])
    ckpt = tmp_path / "run.ckpt"
    torch.save({"state_dict": {}, "vitontrain": {"config": config_to_yaml(cfg)}}, ckpt)
    assert model_size(ckpt, None) == (128, 64) == model_size(ckpt, "stableviton")


def test_check_data_reads_the_first_batch_as_fit_will(train_shards):
    plain = runner.invoke(app, ["check-data", str(train_shards), "-n", "1"])
    assert plain.exit_code == 0 and "decoded at full size" in flat(plain.output)
    assert "add --config NAME" in flat(plain.output)
    tiny = runner.invoke(app, ["check-data", str(train_shards), "-n", "1", "--config", "tiny",
                               "--set", "data.batch_size=2"])
    assert tiny.exit_code == 0, tiny.output
    assert ("first batch as `vitontrain fit` reads it: 2 samples at 256x192 (data.pairs ['paired', 'unpaired'], "
            "data.skip_flagged true") in flat(tiny.output)
    # the official config trains on paired samples only: the bundled unpaired ones give it nothing to read
    official = runner.invoke(app, ["check-data", str(train_shards), "-n", "1", "--config", "stableviton"])
    assert official.exit_code == 1
    assert "no sample with pair in ['paired']" in flat(official.output)
    bad = runner.invoke(app, ["check-data", str(train_shards), "--config", "tiny", "--set", "data.pairs=[bogus]"])
    assert bad.exit_code == 2 and "pairs" in flat(bad.output)


@pytest.mark.usefixtures("one_torch_thread")
def test_sample_defaults_to_the_model_size_and_shows_steps(train_shards, tmp_path):
    out = tmp_path / "s"
    res = runner.invoke(app, ["sample", str(train_shards), str(out), "--config", "tiny", "--random-init",
                              "--steps", "2", "--sampler", "ddim", "--limit", "1", "--mode", "unpaired"])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "samples.json").read_text())["size"] == [256, 192]  # tiny's, not 512x384
    assert "256x192" in res.output and "steps of the batch" in res.output
    assert Image.open(next((out / "unpair").iterdir())).size == (192, 256)


@pytest.mark.usefixtures("one_torch_thread")
def test_tryon_defaults_to_the_model_size_and_reports_each_step(tmp_path):
    from vitontrain.sampling import SamplingConfig, load_inference_model
    from vitontrain.tryon import tryon

    torch.manual_seed(0)
    model = load_inference_model("tiny", None, random_init=True)
    seen: list[tuple[int, int]] = []
    tryon(model, PERSON, CLOTH, SamplingConfig(sampler="ddim", steps=2), 64, 64,
          on_step=lambda i, n: seen.append((i, n)))
    assert seen == [(0, 2), (1, 2)]  # the library reports; the CLI draws
    out = tmp_path / "me.jpg"
    res = runner.invoke(app, ["tryon", str(PERSON), str(CLOTH), "--config", "tiny", "--random-init", "--steps", "2",
                              "--sampler", "ddim", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert Image.open(out).size == (192, 256) and "sampling steps" in res.output


@pytest.mark.slow  # a tiny fit
def test_fit_json_summary_on_stdout(train_shards, tmp_path):
    args = ["fit", "--config", "tiny", "--no-progress", "--json"]
    for o in [f"data.shards=[{train_shards}]", f"train.out_dir={tmp_path}", "data.height=64", "data.width=64",
              "data.batch_size=1", "data.num_workers=0", "data.shuffle_buffer=0", "data.epoch_samples=2",
              "train.max_steps=1", "train.sample_every_n_steps=0", "train.ema.enabled=false"]:
        args += ["--set", o]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["command"] == "fit" and summary["step"] == 1
    assert summary["last"] == str((tmp_path / "checkpoints/step0000001.ckpt").resolve())
    assert summary["compute_s"] > 0
