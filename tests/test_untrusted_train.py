"""Adversarial corpus for vitontrain (issue 15 items 1, 7, 8): crafted checkpoints and weight files, damaged and
crafted shards, markup in messages. Every input is generated here, offline and deterministically; each case asserts
the outcome (a one-line refusal with its exit code, or a reported problem naming shard and key), that no pickled
code ran (a marker file it would create stays absent) and that nothing was written outside the command's OUT."""

from __future__ import annotations

import builtins
import io
import pickle
import shutil
import tarfile
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
SMALL = ["data.height=64", "data.width=64", "data.batch_size=1", "data.num_workers=0", "data.shuffle_buffer=0",
         "data.epoch_samples=2", "train.sample_every_n_steps=0", "train.log_every_n_steps=1", "train.max_steps=1"]
runner = CliRunner()


# ------------------------------------------------------------------------------------------------ crafted inputs
class Planted:
    """Unpickling this calls ``open(marker, "w")``: any loader that runs pickled code leaves the marker behind."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return builtins.open, (self.marker, "w")


def crafted_checkpoint(path: Path, marker: Path, zip_format: bool = True) -> Path:
    """A checkpoint that looks ordinary (a state dict with a tensor) plus one entry that runs code when unpickled."""
    obj = {"state_dict": {"w": torch.zeros(2)}, "epoch": 0, "planted": Planted(marker)}
    path.parent.mkdir(parents=True, exist_ok=True)
    if zip_format:
        torch.save(obj, path)
    else:  # the legacy / plain pickle layout (detectron2 .pkl, old .pth)
        path.write_bytes(pickle.dumps(obj))
    return path


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


def assert_one_line_refusal(result, code: int, *needles: str) -> str:
    """Exit ``code``, exactly one ``error:`` line holding every needle, no traceback (without --verbose)."""
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = error_lines(result.output)
    assert len(lines) == 1, result.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert "Traceback" not in result.output, result.output
    return lines[0]


@pytest.fixture
def sandbox(tmp_path):
    """tmp_path/out is the command's OUT; the marker lives beside it; the test checks the folder afterwards."""
    return tmp_path


def fit_args(shards: Path, out: Path, *extra: str) -> list[str]:
    args = ["fit", "--config", "tiny", "--no-progress", "--set", f"data.shards=[{shards}]",
            "--set", f"train.out_dir={out}"]
    for o in [*SMALL, "data.pairs=[paired,unpaired]", *extra]:
        args += ["--set", o]
    return args


# ---------------------------------------------------------------------------- item 1: checkpoints never run code
def test_fit_resume_path_refuses_a_crafted_checkpoint(train_shards, sandbox):
    marker, evil = sandbox / "marker", crafted_checkpoint(sandbox / "evil.ckpt", sandbox / "marker")
    result = runner.invoke(app, [*fit_args(train_shards, sandbox / "run"), "--resume", str(evil)])
    assert not marker.exists(), "pickled code ran"
    assert_one_line_refusal(result, 2, str(evil), "refusing")


def test_fit_resume_auto_refuses_a_planted_last_ckpt(train_shards, sandbox):
    run = sandbox / "run"
    marker = sandbox / "marker"
    planted = crafted_checkpoint(run / "checkpoints/last.ckpt", marker)
    result = runner.invoke(app, fit_args(train_shards, run))  # --resume auto is the default
    assert not marker.exists(), "pickled code ran"
    assert_one_line_refusal(result, 2, str(planted), "refusing")
    verbose = runner.invoke(app, ["--verbose", *fit_args(train_shards, run)])
    assert verbose.exit_code == 2 and "Traceback" in verbose.output and not marker.exists()


def test_lightning_restore_itself_reads_only_weights(train_shards, sandbox):
    """Beneath the CLI's early check: the trainer's own checkpoint loading (Lightning's CheckpointIO) is the safe
    reader too, so a file swapped in after the check, or any other restore path, still runs no code."""
    from vitontrain.checkpoints import UnsafeCheckpointError
    from vitontrain.train.config import load_fit_config
    from vitontrain.train.fit import build_fit, run_fit

    marker = sandbox / "marker"
    cfg = load_fit_config("tiny", [f"data.shards=[{train_shards}]", f"train.out_dir={sandbox / 'run'}", *SMALL,
                                   "data.pairs=[paired,unpaired]"])
    run = build_fit(cfg, resume="none", progress=False, logger_backends=False)
    run.resume_from = crafted_checkpoint(sandbox / "swapped.ckpt", marker)
    with pytest.raises(UnsafeCheckpointError, match="swapped.ckpt"):
        run_fit(run)
    assert not marker.exists(), "pickled code ran"


@pytest.mark.parametrize("key", ["init.stableviton", "init.paint_by_example", "init.vae"])
def test_fit_init_weights_refuse_a_crafted_file(train_shards, sandbox, key):
    marker, evil = sandbox / "marker", crafted_checkpoint(sandbox / "evil.ckpt", sandbox / "marker")
    result = runner.invoke(app, fit_args(train_shards, sandbox / "run", "init.stand_in_pretrained=false",
                                         f"{key}={evil}"))
    assert not marker.exists(), "pickled code ran"
    assert_one_line_refusal(result, 2, str(evil), "refusing")


@pytest.mark.parametrize("zip_format", [True, False])
def test_sample_refuses_a_crafted_checkpoint(train_shards, sandbox, zip_format):
    marker = sandbox / "marker"
    evil = crafted_checkpoint(sandbox / "evil.ckpt", marker, zip_format)
    out = sandbox / "out"
    args = ["sample", str(train_shards), str(out), "--config", str(TINY), "--checkpoint", str(evil),
            "--no-progress"]
    result = runner.invoke(app, args)
    assert not marker.exists(), "pickled code ran"
    assert_one_line_refusal(result, 2, str(evil), "refusing")
    verbose = runner.invoke(app, ["--verbose", *args])
    assert verbose.exit_code == 2 and "Traceback" in verbose.output and "UnsafeCheckpointError" in verbose.output
    assert not marker.exists()


@pytest.mark.parametrize("case", ["target", "tag"])
def test_sample_refuses_a_checkpoint_whose_stored_config_would_run_code(train_shards, sandbox, case):
    """A fit checkpoint rebuilds its model from the config it stores: that text is parsed strictly (no YAML tags
    constructed) and can only build vitontrain classes."""
    from vitontrain.train.config import config_to_yaml, load_fit_config

    marker = sandbox / "marker"
    text = config_to_yaml(load_fit_config("tiny", ["data.shards=[x]"]))
    text = (text.replace("vitontrain.models.stableviton.StableVITONModel", "os.system") if case == "target"
            else f"model: !!python/object/apply:os.system ['touch {marker}']\n")
    crafted = sandbox / "slim.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "vitontrain": {"layout": "official", "config": text,
                "frozen": {"dropped": ["x"], "fingerprint": None}}}, crafted)
    result = runner.invoke(app, ["sample", str(train_shards), str(sandbox / "out"), "--checkpoint", str(crafted),
                                 "--no-progress"])
    assert not marker.exists(), "the stored config ran code"
    assert_one_line_refusal(result, 2, str(crafted))
    assert not (sandbox / "out").exists()


def test_tryon_refuses_a_crafted_checkpoint(sandbox):
    marker, evil = sandbox / "marker", crafted_checkpoint(sandbox / "evil.ckpt", sandbox / "marker")
    out = sandbox / "out/tryon.jpg"
    result = runner.invoke(app, ["tryon", str(PERSON), str(CLOTH), "--config", str(TINY), "--checkpoint",
                                 str(evil), "-o", str(out)])
    assert not marker.exists(), "pickled code ran"
    assert_one_line_refusal(result, 2, str(evil), "refusing")
    assert not out.exists()


def test_evaluate_refuses_crafted_weight_files(sandbox):
    marker, evil = sandbox / "marker", crafted_checkpoint(sandbox / "evil.pth", sandbox / "marker")
    gen = sandbox / "gen"
    gen.mkdir()
    good = sandbox / "alex.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, good)
    for args in (["--inception-weights", str(evil), "--lpips-weights", str(good)],
                 ["--inception-weights", str(good), "--lpips-weights", str(evil)],
                 ["--inception-weights", str(good), "--lpips-weights", str(good), "--lpips-linear", str(evil)]):
        result = runner.invoke(app, ["evaluate", str(gen), str(gen), *args, "--no-progress"])
        assert not marker.exists(), ("pickled code ran", args)
        assert_one_line_refusal(result, 2, str(evil))


def test_reference_backend_weight_loaders_run_no_code(sandbox):
    """vitonprep's reference back-ends (SCHP, OpenPose, SAM: torch files; DensePose: a detectron2 pickle) read
    their weight files through one safe reader that names the file."""
    from vitonprep.backends.cloth_mask_sam import load_sam
    from vitonprep.backends.densepose_rcnn_weights import read_detectron2_pkl
    from vitonprep.backends.parsing_schp import read_schp_state_dict
    from vitonprep.backends.pose_openpose import load_body_net
    from vitonprep.weights import WeightsFormatError

    marker = sandbox / "marker"
    loaders = {"schp": read_schp_state_dict, "openpose": load_body_net,
               "sam": lambda p: load_sam(p, lambda: torch.nn.Linear(1, 1)), "densepose": read_detectron2_pkl}
    for name, load in loaders.items():
        for zip_format in (True, False):
            evil = crafted_checkpoint(sandbox / f"{name}-{zip_format}.pth", marker, zip_format)
            with pytest.raises(Exception) as info:
                load(evil)
            assert not marker.exists(), (name, zip_format, "pickled code ran")
            assert isinstance(info.value, (WeightsFormatError, ValueError)), (name, repr(info.value))
            assert str(evil) in str(info.value), (name, str(info.value))


# ----------------------------------------------------------------------- shard surgery (item 7 and crafted shards)
def read_tar(path: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(path) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers() if m.isfile()]


def write_tar(path: Path, members: list[tuple[str, bytes]]) -> None:
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))


def first_shard(folder: Path) -> Path:
    return sorted(folder.glob("*.tar"))[0]


def key_of(shard: Path) -> str:
    return read_tar(shard)[0][0].split(".", 1)[0]


def edit_member(shard: Path, suffix: str, edit) -> str:
    members = read_tar(shard)
    write_tar(shard, [(n, edit(d) if n.endswith("." + suffix) else d) for n, d in members])
    return key_of(shard)


def with_label(value: int):
    def edit(data: bytes) -> bytes:
        img = Image.open(io.BytesIO(data))
        labels = np.array(img)
        labels[0, 0] = value
        out = Image.fromarray(labels, mode="P")
        out.putpalette(img.getpalette())
        buf = io.BytesIO()
        out.save(buf, format="PNG")
        return buf.getvalue()
    return edit


@pytest.fixture
def shards(train_shards, tmp_path):
    """A private copy of the session's 3 one-sample shards, free to damage."""
    return Path(shutil.copytree(train_shards, tmp_path / "shards"))


def check_data(folder: Path, *extra: str):
    return runner.invoke(app, ["check-data", str(folder), *extra])


def test_check_data_passes_clean_shards(shards):
    result = check_data(shards)
    assert result.exit_code == 0, result.output
    assert not error_lines(result.output)


def test_check_data_reports_a_truncated_shard(shards):
    shard = first_shard(shards)
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2 + 100])  # cut inside a member
    result = check_data(shards)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert any(shard.name in line and "truncated" in line for line in error_lines(result.output)), result.output


def test_check_data_reports_a_damaged_member_with_its_key(shards):
    shard = first_shard(shards)
    key = edit_member(shard, "parse.png", lambda d: d[:60] + bytes(b ^ 0x5A for b in d[60:200]) + d[200:])
    result = check_data(shards)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = error_lines(result.output)
    assert any(shard.name in line and key in line and "parse.png" in line for line in lines), result.output
    assert "sample ?" not in result.output


def test_check_data_reports_duplicate_keys_across_shards(shards):
    shard = first_shard(shards)
    copy = shards / "00099.tar"
    shutil.copy(shard, copy)
    result = check_data(shards)
    assert result.exit_code == 1, result.output
    lines = error_lines(result.output)
    key = key_of(shard)
    assert any("duplicate" in line and key in line and shard.name in line and copy.name in line
               for line in lines), result.output


def test_check_data_reports_a_label_out_of_range(shards):
    shard = first_shard(shards)
    key = edit_member(shard, "parse.png", with_label(25))
    result = check_data(shards)
    assert result.exit_code == 1, result.output
    assert any(shard.name in line and key in line and "parse" in line and "25" in line
               for line in error_lines(result.output)), result.output


def test_fit_on_a_truncated_shard_stops_with_one_line(shards, tmp_path):
    shard = first_shard(shards)
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2 + 100])
    result = runner.invoke(app, fit_args(shards, tmp_path / "run"))
    assert_one_line_refusal(result, 1, shard.name, "truncated")


def test_stream_names_a_shard_truncated_after_the_start_check(shards):
    """The stream itself (a shard damaged while training runs, or a remote one) raises a clear error naming the
    shard instead of tarfile.ReadError; through DataLoader workers the message stays one line."""
    from vitontrain.data.module import ResumableLoader
    from vitontrain.data.stream import ShardReadError, ShardStream, StreamConfig

    shard = first_shard(shards)
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2 + 100])
    cfg = StreamConfig(height=64, width=64, batch_size=1, sampling="partitioned", shuffle_buffer=0,
                       pairs=("paired", "unpaired"))
    for workers in (0, 1):
        loader = ResumableLoader(ShardStream([str(shard)], cfg, 4), num_workers=workers)
        with pytest.raises(ShardReadError) as info:
            list(loader)
        message = str(info.value)
        assert str(shard) in message and "\n" not in message, message


# ----------------------------------------------------------------------------------------------- crafted shards
@pytest.fixture
def pickle_carrying_shards(shards, sandbox):
    """Every shard also holds members webdataset's default decoders would unpickle (.pyd/.pickle/.pkl) or
    torch.load with a full unpickler (.pth); each would create the marker."""
    marker = sandbox / "marker"
    for shard in sorted(shards.glob("*.tar")):
        key = key_of(shard)
        payload = pickle.dumps(Planted(marker))
        buf = io.BytesIO()
        torch.save({"x": Planted(marker)}, buf)
        members = read_tar(shard) + [(f"{key}.evil.pyd", payload), (f"{key}.evil.pickle", payload),
                                     (f"{key}.evil.pkl", payload), (f"{key}.evil.pth", buf.getvalue())]
        write_tar(shard, members)
    assert not marker.exists()
    return shards, marker


def test_pickled_members_are_never_unpickled_by_check_data_or_sample(pickle_carrying_shards, sandbox):
    """vitontrain decodes the contract's members only, so a planted member runs no code."""
    shards, marker = pickle_carrying_shards
    result = check_data(shards)
    assert not marker.exists(), "check-data ran pickled code"
    assert result.exit_code == 0, result.output
    res = runner.invoke(app, ["sample", str(shards), str(sandbox / "out"), "--config", str(TINY), "--random-init",
                              "--steps", "1", "--height", "64", "--width", "64", "--no-progress", "--limit", "1"])
    assert not marker.exists(), "sample ran pickled code"
    assert res.exit_code == 0, res.output


def test_pickled_members_are_never_unpickled_by_fit(pickle_carrying_shards, sandbox):
    """fit reads shards in the stream and, for its sample grids, in shard order (preview batches)."""
    shards, marker = pickle_carrying_shards
    fit = runner.invoke(app, fit_args(shards, sandbox / "run", "train.sample_every_n_steps=1",
                                      "train.sample_steps=1", "train.sample_count=1"))
    assert not marker.exists(), "fit ran pickled code"
    assert fit.exit_code == 0, fit.output
    assert sorted(p.name for p in (sandbox / "run/samples").glob("*.jpg"))  # the preview path did run


def test_sample_writes_nothing_outside_out_for_crafted_names(shards, sandbox):
    """meta.json names (person_id, cloth_id) become file names in `vitontrain sample`: `../` parts or separators
    must not leave OUT; such a sample is reported and skipped, the others are written."""
    import json

    shard = first_shard(shards)

    def evil_meta(data: bytes) -> bytes:
        meta = json.loads(data)
        # unchecked, `OUT/unpair/../../escaped_x.jpg` lands beside OUT
        meta["person_id"], meta["cloth_id"] = "../../escaped", "x"
        return json.dumps(meta).encode()

    bad_key = edit_member(shard, "meta.json", evil_meta)
    out = sandbox / "work/out"
    before = tree(sandbox)
    res = runner.invoke(app, ["sample", str(shards), str(out), "--config", str(TINY), "--random-init", "--steps",
                              "1", "--height", "64", "--width", "64", "--no-progress"])
    assert res.exit_code == 0, res.output
    created = tree(sandbox) - before
    assert created and all(p.startswith("work/out") or p == "work" for p in created), sorted(created)
    manifest = json.loads((out / "samples.json").read_text())
    assert bad_key not in [item["key"] for item in manifest["items"]]
    assert bad_key in " ".join(res.output.split())
    assert len(manifest["items"]) == 2


# --------------------------------------------------------------------------------------- item 8: message printing
def test_markup_characters_in_values_are_printed_literally():
    result = runner.invoke(app, ["fit", "--config", "tiny", "--set", "data.shards=[/x"])
    assert result.exit_code == 2, (result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    line = error_lines(result.output)
    assert len(line) == 1 and "[/x" in line[0], result.output
    assert result.output.strip() == line[0], result.output  # YAML's caret drawing is not printed either


def test_hints_keep_their_brackets(train_shards, tmp_path):
    """train_shards hold unpaired samples only; the refusal's hint names the exact override to use."""
    args = fit_args(train_shards, tmp_path / "run")
    args[args.index("data.pairs=[paired,unpaired]")] = "data.pairs=[paired]"
    result = runner.invoke(app, args)
    line = assert_one_line_refusal(result, 1, "data.pairs=[paired,unpaired]")
    assert "['paired']" in line


def test_broken_yaml_config_is_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [\n  x: 1\n")
    result = runner.invoke(app, ["fit", "--config", str(bad)])
    line = assert_one_line_refusal(result, 2, str(bad), "invalid YAML", "line 3")
    assert result.output.strip() == line, result.output


def test_help_keeps_its_brackets():
    result = runner.invoke(app, ["fit", "--help"])
    assert result.exit_code == 0
    assert "--set data.shards=[out/shards]" in " ".join(result.output.replace("│", " ").split())


def test_unexpected_errors_are_one_line_and_verbose_shows_the_traceback(monkeypatch, tmp_path):
    import vitontrain.data.shards as shard_lib

    def broken(*_a, **_k):
        raise RuntimeError("something [bold]odd[/bold]")

    monkeypatch.setattr(shard_lib, "check_shards", broken)
    (tmp_path / "00000.tar").write_bytes(b"")
    result = runner.invoke(app, ["check-data", str(tmp_path)])
    assert_one_line_refusal(result, 1, "something [bold]odd[/bold]", "RuntimeError")
    verbose = runner.invoke(app, ["--verbose", "check-data", str(tmp_path)])
    assert verbose.exit_code == 1 and "Traceback" in verbose.output


def test_evaluate_reads_real_shards_through_the_contract_reader(shards):
    """`evaluate`'s real persons from shards: a truncated shard is a ShardReadError naming it (was a raw
    tarfile.ReadError), and images go through the contract decoder (pixel limit) rather than a bare PIL open."""
    from vitontrain.data.shards import ShardReadError
    from vitontrain.evaluation import real_person_images

    images = real_person_images(shards, split=None)
    assert len(images) == 3 and all(v.ndim == 3 for v in images.values())
    shard = first_shard(shards)
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2 + 100])
    with pytest.raises(ShardReadError, match=shard.name):
        real_person_images(shards, split=None)


def test_strategies_that_bypass_the_weights_only_reader_are_refused():
    """FSDP/DeepSpeed/XLA restore checkpoints with their own unpicklers (Lightning's _lazy_load, torch.distributed
    checkpoint metadata), not through the trainer's CheckpointIO: the config refuses them."""
    for strategy in ("fsdp", "deepspeed_stage_2", "xla"):
        result = runner.invoke(app, ["fit", "--config", "tiny", "--set", f"train.strategy={strategy}"])
        assert_one_line_refusal(result, 2, "train.strategy", strategy)


def test_fit_resume_auto_with_a_cut_last_ckpt_is_one_line(train_shards, sandbox):
    """A last.ckpt cut short (a kill during its save, a full disk) is a one-line refusal with what to do next."""
    last = sandbox / "run/checkpoints/last.ckpt"
    last.parent.mkdir(parents=True)
    buf = io.BytesIO()
    torch.save({"state_dict": {"w": torch.zeros(1000)}}, buf)
    last.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    result = runner.invoke(app, fit_args(train_shards, sandbox / "run"))
    assert_one_line_refusal(result, 2, str(last), "not a readable torch checkpoint", "--resume none")
