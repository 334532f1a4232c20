"""Exit codes and outputs of the command lines."""

import json

import pytest
import typer
from PIL import Image
from typer.core import TyperOption
from typer.testing import CliRunner

from vitonprep.cli import app
from vitontrain.cli import app as train_app

runner = CliRunner()


def test_help_teaches():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for cmd in ("convert", "validate", "inspect", "export"):
        assert cmd in result.output
    assert runner.invoke(app, ["convert", "vitonhd", "--help"]).exit_code == 0


def _commands(command, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], object]]:
    """Every command and group, by its path (typer vendors click: groups are told by their ``commands``)."""
    out = [(prefix, command)]
    for name, sub in getattr(command, "commands", {}).items():
        out += _commands(sub, prefix + (name,))
    return out


COMMANDS = _commands(typer.main.get_command(app))


@pytest.mark.parametrize("path,command", COMMANDS, ids=[" ".join(p) or "vitonprep" for p, _ in COMMANDS])
def test_help_at_80_columns_shows_every_option_name_whole(path, command):
    """Every command's help (issue 19): no line over 80 columns, no option name cut ("--samples-per-sh…")."""
    result = runner.invoke(app, [*path, "--help"], terminal_width=80, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80, [line for line in lines if len(line) > 80]
    names = [n for p in command.params if isinstance(p, TyperOption) for n in p.opts + p.secondary_opts]
    words = set(result.output.replace(",", " ").split())
    assert (names or hasattr(command, "commands")) and [n for n in names if n not in words] == []
    assert "…" not in result.output


def test_convert_cli_end_to_end(tmp_path, data_dir):
    out = tmp_path / "shards"
    result = runner.invoke(app, ["convert", "vitonhd", str(data_dir / "vitonhd-official"), str(out),
                                 "--samples-per-shard", "2"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.glob("*.tar")) == ["00000.tar", "00001.tar"]
    assert json.loads((out / "manifest.json").read_text())["vitonprep"]["nsamples"] == 3
    # rerun resumes: nothing rewritten
    before = (out / "00000.tar").stat().st_mtime_ns
    result = runner.invoke(app, ["convert", "vitonhd", str(data_dir / "vitonhd-official"), str(out),
                                 "--samples-per-shard", "2"])
    assert result.exit_code == 0 and (out / "00000.tar").stat().st_mtime_ns == before


def test_convert_cli_errors(tmp_path):
    result = runner.invoke(app, ["convert", "vitonhd", str(tmp_path / "missing"), str(tmp_path / "o")])
    assert result.exit_code == 2 and "does not exist" in result.output
    result = runner.invoke(app, ["convert", "dresscode", str(tmp_path), str(tmp_path / "o"), "--category", "hats"])
    assert result.exit_code == 2 and "unknown categories" in result.output


def test_inspect_and_export(vitonhd_shards, tmp_path):
    sheet = tmp_path / "sheet.png"
    result = runner.invoke(app, ["inspect", str(vitonhd_shards), "--out", str(sheet), "-n", "3"])
    assert result.exit_code == 0, result.output
    img = Image.open(sheet)
    assert img.width > 1000 and img.height > 3 * 150
    assert "APPROXIMATE" not in result.output  # the table says yes/no; the sheet caption carries the word
    assert "densepose-approx-parse" in result.output
    result = runner.invoke(app, ["export", str(vitonhd_shards), str(tmp_path / "vh")])
    assert result.exit_code == 0 and (tmp_path / "vh/test_pairs.txt").is_file()
    assert runner.invoke(app, ["validate", str(tmp_path / "nothing")]).exit_code == 2


def test_vitontrain_check_data(vitonhd_shards, tmp_path):
    result = runner.invoke(train_app, ["check-data", str(vitonhd_shards)])
    assert result.exit_code == 0, result.output
    assert "3 samples match" in result.output
    (tmp_path / "empty").mkdir()
    assert runner.invoke(train_app, ["check-data", str(tmp_path / "empty")]).exit_code == 2


def test_console_scripts_are_import_light_and_run_the_clis():
    # spawn workers re-import the script that started the build; it must not drag the CLI (typer, rich) along
    import subprocess
    import sys
    import tomllib
    from pathlib import Path

    scripts = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"vitonprep": "vitonprep.entry:main", "vitontrain": "vitontrain.entry:main"}
    code = ("import sys\n"
            "import vitonprep.entry, vitontrain.entry\n"
            "heavy = [m for m in ('typer', 'rich', 'click', 'vitonprep.cli', 'vitontrain.cli', 'torch')"
            " if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    subprocess.run([sys.executable, "-c", code], check=True)
    for name in ("vitonprep", "vitontrain"):
        run = subprocess.run([sys.executable, "-c", f"from {name}.entry import main; main()", "--help"],
                             capture_output=True, text=True)
        assert run.returncode == 0 and "Usage" in run.stdout, run.stderr
        bad = subprocess.run([sys.executable, "-c", f"from {name}.entry import main; main()", "no-such-command"],
                             capture_output=True, text=True)
        assert bad.returncode == 2
