"""mediapipe's native log lines (glog/absl and TensorFlow Lite, written straight to fd 2) are captured and sent
through `logging`: DEBUG when the back-end works, ERROR when it fails; nothing of theirs reaches stderr, and what
other code writes to stderr meanwhile still gets there."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vitonprep.backends.native_logs import native_logs_captured, split_native
from vitonprep.backends.person_mediapipe import MediapipePerson
from vitonprep.backends.pose_mediapipe import MediapipePose

from conftest import raw_from_bundled_pairs

LOGGER = "vitonprep.backends.native_logs"
GLOG = b"W0000 00:00:1796676619.152073     853 inference_feedback_manager.cc:114] Feedback manager disabled.\n"
TFLITE = b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"


def _records(caplog) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == LOGGER]


def _fd2() -> tuple[int, int]:
    st = os.fstat(2)
    return st.st_dev, st.st_ino


def test_native_lines_are_logged_at_debug_and_other_bytes_reach_stderr(capfd, caplog):
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    before = _fd2()
    with native_logs_captured("Pose"):
        os.write(2, TFLITE + b"\x1b[2Kbuild 1/2\n" + GLOG)  # a progress bar's frame between two native lines
    assert _fd2() == before  # fd 2 is what it was
    assert capfd.readouterr().err == "\x1b[2Kbuild 1/2\n"
    assert _records(caplog) == [
        (logging.DEBUG, "Pose: INFO: Created TensorFlow Lite XNNPACK delegate for CPU."),
        (logging.DEBUG, "Pose: W inference_feedback_manager.cc:114] Feedback manager disabled."),
    ]


def test_native_lines_of_a_failing_block_are_logged_at_error(capfd, caplog):
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    before = _fd2()
    with pytest.raises(RuntimeError, match="graph failed"), native_logs_captured("Person"):
        os.write(2, b"E1207 20:51:02.123456    42 calculator_graph.cc:887] model file not found\n")
        raise RuntimeError("graph failed")
    assert _fd2() == before
    assert capfd.readouterr().err == ""
    assert _records(caplog) == [(logging.ERROR, "Person: E calculator_graph.cc:887] model file not found")]


def test_a_nested_block_is_part_of_the_outer_one(capfd, caplog):
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    before = _fd2()
    with native_logs_captured("outer"):
        with native_logs_captured("inner"):
            os.write(2, TFLITE)
        assert _fd2() != before  # still captured after the inner block ended
        os.write(2, GLOG)
    assert _fd2() == before
    assert [m.split(":")[0] for _, m in _records(caplog)] == ["outer", "outer"]
    assert capfd.readouterr().err == ""


def test_split_native_keeps_python_output_and_tells_the_formats_apart():
    native, other = split_native(TFLITE + b"UserWarning: something\n" + GLOG
                                 + b"I1207 20:51:02.123456  42 x.cc:9] hi\nWARNING:root:python logging\n")
    assert native == ["INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
                      "W inference_feedback_manager.cc:114] Feedback manager disabled.", "I x.cc:9] hi"]
    assert other == b"UserWarning: something\nWARNING:root:python logging\n"


def test_mediapipe_back_ends_print_nothing_and_log_their_lines(capfd, caplog, data_dir):
    """Each new graph warns (inference_feedback_manager) when it loads its model: those lines come through logging
    at DEBUG, stderr gets none of them."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    rgb = np.asarray(Image.open(data_dir / "samples/person/00034_00.jpg").convert("RGB"))
    capfd.readouterr()
    with MediapipePose() as pose, MediapipePerson() as person:
        pose(rgb)
        person(rgb)
    err = capfd.readouterr().err
    assert "W0000" not in err and "inference_feedback_manager" not in err and "TensorFlow Lite" not in err, err
    logged = _records(caplog)
    assert {lvl for lvl, _ in logged} == {logging.DEBUG}
    assert any(m.startswith("MediapipePose: W inference_feedback_manager.cc") for _, m in logged), logged
    assert any(m.startswith("MediapipePerson: W inference_feedback_manager.cc") for _, m in logged), logged


@pytest.fixture(scope="module")
def one_pair(tmp_path_factory) -> Path:
    return raw_from_bundled_pairs(tmp_path_factory.mktemp("raw") / "raw", ("00034_00.jpg",))


def _build(raw: Path, out: Path, *flags: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "300"}  # log lines unwrapped
    return subprocess.run([sys.executable, "-m", "vitonprep", *flags, "build", str(raw), str(out), "--sheet", "0"],
                          capture_output=True, text=True, env=env, timeout=600)


def test_a_build_prints_no_native_lines_and_verbose_shows_them_as_debug(one_pair, tmp_path):
    """A fresh process, where mediapipe prints everything it prints once per process (the TensorFlow Lite
    delegate line, absl's warning about its initialisation): the build's stderr holds none of it."""
    quiet = _build(one_pair, tmp_path / "quiet")
    assert quiet.returncode == 0, quiet.stderr
    lines = quiet.stderr.splitlines()
    assert not [ln for ln in lines if ln.startswith(("W0000", "I0000", "INFO: ", "WARNING: All log"))], quiet.stderr
    assert "TensorFlow Lite" not in quiet.stderr and "inference_feedback_manager" not in quiet.stderr
    loud = _build(one_pair, tmp_path / "loud", "--verbose")
    assert loud.returncode == 0, loud.stderr
    debug = [ln for ln in loud.stderr.splitlines() if ln.startswith("DEBUG") and "Mediapipe" in ln]
    assert any("INFO: Created TensorFlow Lite XNNPACK delegate" in ln for ln in debug), loud.stderr
    assert any("W inference_feedback_manager.cc" in ln for ln in debug), loud.stderr
    assert not [ln for ln in loud.stderr.splitlines() if ln.startswith(("W0000", "INFO: "))]


def test_verbose_shows_the_native_lines_of_pool_workers_too(tmp_path):
    """Two pairs on two workers: the shards are made in forked pool workers, which get the CLI's log level."""
    raw = raw_from_bundled_pairs(tmp_path / "raw", ("00034_00.jpg", "00055_00.jpg"))
    env = {**os.environ, "COLUMNS": "300"}
    pooled = subprocess.run([sys.executable, "-m", "vitonprep", "--verbose", "build", str(raw), str(tmp_path / "p"),
                             "--sheet", "0", "-j", "2"], capture_output=True, text=True, env=env, timeout=600)
    assert pooled.returncode == 0, pooled.stderr
    worker_lines = [ln for ln in pooled.stderr.splitlines()
                    if ln.startswith("DEBUG vitonprep.backends.native_logs: Mediapipe")]
    assert any("inference_feedback_manager" in ln for ln in worker_lines), pooled.stderr
