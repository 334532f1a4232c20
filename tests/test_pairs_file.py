"""A pairs file is the whole list: only its pairs are built, a person photo it does not name is left out (one log
line counts them), and person-only samples come only from a layout without a pairs file."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vitonprep.cli import app
from vitonprep.errors import ConfigError
from vitonprep.raw import plan_raw
from vitonprep.shards import iter_tar_samples, list_shards

runner = CliRunner()
PERSONS = ("00034_00.jpg", "00035_00.jpg", "00055_00.jpg", "00121_00.jpg", "01992_00.jpg")


@pytest.fixture
def raw(tmp_path, data_dir) -> Path:
    """The five bundled person photos and their five garments; no pairs file yet."""
    root = tmp_path / "raw"
    shutil.copytree(data_dir / "samples/person", root / "person")
    (root / "cloth").mkdir()
    for line in (data_dir / "samples/pairs.txt").read_text().splitlines():
        shutil.copy(data_dir / "samples/cloth" / line.split()[1], root / "cloth")
    return root


def test_only_the_listed_pairs_are_planned_and_the_others_are_counted(raw, caplog):
    (raw / "pairs.txt").write_text("00034_00.jpg 04469_00.jpg\n00055_00.jpg 09133_00.jpg\n")
    with caplog.at_level(logging.WARNING, logger="vitonprep.raw"):
        plan = plan_raw(raw)
    assert [(i.key, i.pair) for i in plan.items] == [("00034_00__04469_00", "unpaired"),
                                                      ("00055_00__09133_00", "unpaired")]
    assert plan.unlisted_persons == ("00035_00.jpg", "00121_00.jpg", "01992_00.jpg")
    assert plan.skipped == ()  # left out by the user's choice, not a failure
    assert [r.getMessage() for r in caplog.records] == [
        "3 person photos not in pairs.txt were left out: 00035_00.jpg, 00121_00.jpg, 01992_00.jpg"]


def test_a_person_named_on_a_line_that_cannot_be_used_is_a_failure_not_a_person_only_sample(raw, caplog):
    (raw / "pairs.txt").write_text("00034_00.jpg 04469_00.jpg\n00035_00.jpg missing.jpg\n"
                                   + "".join(f"{p} 09166_00.jpg\n" for p in PERSONS[2:]))
    with caplog.at_level(logging.WARNING, logger="vitonprep.raw"):
        plan = plan_raw(raw)
    assert all(i.pair != "person_only" for i in plan.items) and len(plan.items) == 4
    assert [(Path(f.source).name, f.stage) for f in plan.skipped] == [("pairs.txt:2", "plan")]
    assert plan.unlisted_persons == ()
    assert not any("not in pairs.txt" in r.getMessage() for r in caplog.records)


def test_a_given_pairs_file_is_named_in_the_count(raw, tmp_path, caplog):
    pairs = tmp_path / "mine.txt"
    pairs.write_text("01992_00.jpg 09166_00.jpg\n")
    (raw / "pairs.txt").write_text("".join(f"{p} 04469_00.jpg\n" for p in PERSONS))  # not read: --pairs wins
    with caplog.at_level(logging.WARNING, logger="vitonprep.raw"):
        plan = plan_raw(raw, pairs)
    assert [i.key for i in plan.items] == ["01992_00__09166_00"] and len(plan.unlisted_persons) == 4
    assert "4 person photos not in mine.txt were left out" in caplog.text


def test_without_a_pairs_file_persons_without_a_garment_are_person_only(raw):
    shutil.copy(raw / "cloth/04469_00.jpg", raw / "cloth/00034_00.jpg")  # one garment shares a person's stem
    plan = plan_raw(raw)
    assert [(i.key, i.pair) for i in plan.items] == [("00034_00", "paired")] + [
        (Path(p).stem, "person_only") for p in PERSONS[1:]]
    assert plan.unlisted_persons == ()


@pytest.mark.parametrize(("text", "reason"), [
    ("# nothing yet\n\n", "lists no pair"),
    ("00034_00.jpg nowhere.jpg\nnobody.jpg 04469_00.jpg\n", "names no usable pair (2 lines"),
])
def test_a_pairs_file_without_a_usable_pair_stops_the_plan(raw, text, reason):
    (raw / "pairs.txt").write_text(text)
    with pytest.raises(ConfigError, match="pairs file .*pairs.txt") as err:
        plan_raw(raw)
    assert reason in str(err.value) and "without it" in str(err.value)


def test_cli_a_pairs_file_without_a_usable_pair_exits_2_naming_it(raw, tmp_path):
    (raw / "pairs.txt").write_text("00034_00.jpg nowhere.jpg\n")
    result = runner.invoke(app, ["build", str(raw), str(tmp_path / "out")], terminal_width=300)
    assert result.exit_code == 2, result.output
    assert "names no usable pair" in result.output and "nowhere.jpg" in result.output
    assert "Traceback" not in result.output


def test_cli_build_makes_only_the_listed_pairs(raw, tmp_path):
    """The issue's case, small: persons not in pairs.txt are not built, and the console says how many."""
    (raw / "pairs.txt").write_text("00121_00.jpg 09164_00.jpg\n")
    result = runner.invoke(app, ["build", str(raw), str(tmp_path / "out"), "--sheet", "0"], terminal_width=300)
    assert result.exit_code == 0, result.output
    assert "4 person photos not in pairs.txt were left out" in result.output
    out = tmp_path / "out"
    assert [s.key for tar in list_shards(out) for s in iter_tar_samples(tar)] == ["00121_00__09164_00"]
    assert json.loads((out / "manifest.json").read_text())["vitonprep"]["skipped_inputs"] == []
