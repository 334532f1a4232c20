"""vitonprep's machine-readable summaries (issue 19): `build --json` and `validate --json` print one JSON object on
stdout, everything human goes to stderr, and each exit code says the same as the object's ``exit_code``."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from vitonprep.cli import app

from conftest import raw_from_bundled_pairs

runner = CliRunner()


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    """One bundled pair, and a pairs line naming a photo that is not there (a recorded plan failure)."""
    root = raw_from_bundled_pairs(tmp_path_factory.mktemp("json") / "raw", ("00034_00.jpg",))
    with open(root / "pairs.txt", "a") as fh:
        fh.write("missing.jpg 04469_00.jpg\n")
    return root


def test_build_json_summary_on_stdout_with_its_exit_code(raw, tmp_path):
    out = tmp_path / "shards"
    first = runner.invoke(app, ["build", str(raw), str(out), "-j", "1", "--sheet", "0", "--strict", "--json"])
    assert first.exit_code == 1, first.output  # --strict: the missing photo is a failure
    summary = json.loads(first.stdout)  # stdout holds the object alone: tables and the bar are on stderr
    assert summary["command"] == "build" and summary["exit_code"] == 1
    assert (summary["planned"], summary["samples"], summary["made"], summary["failed"]) == (1, 1, 1, 1)
    assert summary["failures"][0]["stage"] == "plan" and "missing.jpg" in summary["failures"][0]["reason"]
    assert summary["validate"] == {"ok": True, "samples": 1, "errors": 0, "warnings": summary["validate"]["warnings"]}
    assert summary["quality"]["checked"] == 1 and summary["export"] is None
    assert "validate: 1 samples" in first.stderr and "validate" not in first.stdout.replace('"validate"', "")

    again = runner.invoke(app, ["build", str(raw), str(out), "-j", "1", "--sheet", "0", "--json",
                                "--export-vitonhd", str(tmp_path / "vh")])
    assert again.exit_code == 0, again.output
    summary = json.loads(again.stdout)
    assert summary["exit_code"] == 0 and summary["resumed_shards"] == summary["shards"] and summary["made"] == 0
    exported = summary["export"]
    assert exported["samples"] + exported["flagged"] == 1 and exported["refused"] == 0
    # the bundled pair is unpaired: listed as a try-on input, never for training (unless the checks flag it)
    assert (exported["pairing"], exported["lists"]) == (({"unpaired": 1}, {
        "paired": ["train_pairs.txt"], "unpaired": ["train_pairs_unpaired.txt"]}) if exported["samples"] else ({}, {}))


def test_build_refused_prints_nothing_on_stdout(raw, tmp_path):
    result = runner.invoke(app, ["build", str(raw), str(tmp_path / "o"), "--category", "hats", "--json"])
    assert result.exit_code == 2 and result.stdout == ""
    assert "hats" in result.stderr


def test_validate_json_summary_and_exit_codes(vitonhd_shards, tmp_path):
    sound = runner.invoke(app, ["validate", str(vitonhd_shards), "--json", "--report", str(tmp_path / "r.json")])
    assert sound.exit_code == 0, sound.output
    summary = json.loads(sound.stdout)
    assert summary == {**summary, "command": "validate", "ok": True, "samples": 3, "errors": 0, "exit_code": 0,
                       "report": str(tmp_path / "r.json")}
    assert summary["quality"]["unchecked"] == 3  # converted data was never quality-checked
    assert json.loads((tmp_path / "r.json").read_text())["nsamples"] == 3  # the full report is still written

    broken = tmp_path / "broken"
    shutil.copytree(vitonhd_shards, broken)
    next(broken.glob("*_stats.json")).unlink()  # a shard without its completion marker
    bad = runner.invoke(app, ["validate", str(broken), "--json"])
    assert bad.exit_code == 1
    summary = json.loads(bad.stdout)
    assert summary["ok"] is False and summary["errors"] >= 1 and summary["exit_code"] == 1
    assert any(k.startswith("error:") for k in summary["issues_by_check"])
    assert summary["report"] == str(broken / "validation_report.json")

    missing = runner.invoke(app, ["validate", str(tmp_path / "nowhere"), "--json"])
    assert missing.exit_code == 2 and missing.stdout == ""
    both = runner.invoke(app, ["validate", str(vitonhd_shards), "--json", "--report", "-"])
    assert both.exit_code == 2 and both.stdout == "" and "--report -" in both.stderr
