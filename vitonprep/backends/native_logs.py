"""Log lines that native libraries write straight to file descriptor 2, captured and sent through `logging`.

mediapipe's C++ layer (glog/absl, TensorFlow Lite) prints about ten lines on stderr when its graphs are built and
first run (``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.``, ``W0000 ... inference_feedback_manager.cc
...``). They bypass Python, so neither `logging` nor ``sys.stderr`` can hold them back, and they broke into the
build's progress bar. :func:`native_logs_captured` points fd 2 at a temporary file for the duration of a block
(``os.dup``/``os.dup2``), then restores it and re-emits each native line through this module's logger: at DEBUG
(shown by ``vitonprep --verbose``) when the block succeeded, at ERROR when it raised, so the lines that explain a
failing back-end are shown with its error.

Caveats. fd 2 belongs to the whole process: while a block runs, everything any thread writes to stderr goes into
the file. Lines that are not native log lines (a progress bar refreshed by another thread, a Python warning) are
written back to stderr unchanged when the block ends, late but in their order. Blocks are serialised by one lock
(two overlapping redirections could leave fd 2 pointing at a closed file); a block entered again in the same
thread is part of the outer one. Keep the blocks short: graph creation and first inference, where mediapipe logs.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import threading
from contextlib import contextmanager
from typing import Iterator

logger = logging.getLogger(__name__)

#: a native log line: glog/absl (``W0000 00:00:1796676619.152073     853 file.cc:114] message``; the time and
#: thread are dropped when it is logged again) or TensorFlow Lite's own logger (``INFO: message``), the two formats
#: mediapipe 0.10.21 writes
_GLOG = re.compile(rb"^([IWEF])\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ ([^\]\s]+:\d+\] .*)$", re.DOTALL)
_TFLITE = re.compile(rb"^(?:INFO|WARNING|ERROR): ")

_LOCK = threading.RLock()
_DEPTH = {"n": 0}  # blocks open in the thread holding the lock (re-entry is part of the outer block)


def split_native(data: bytes) -> tuple[list[str], bytes]:
    """(native log lines as text, every other byte of ``data`` in its order)."""
    native, other = [], []
    for line in data.splitlines(keepends=True):
        glog = _GLOG.match(line)
        if glog:
            line = glog.group(1) + b" " + glog.group(2)
        elif not _TFLITE.match(line):
            other.append(line)
            continue
        native.append(line.decode("utf-8", "replace").rstrip("\r\n"))
    return native, b"".join(other)


@contextmanager
def native_logs_captured(what: str) -> Iterator[None]:
    """Capture what native code writes to fd 2 inside the block; ``what`` names the source in the log lines.

    Where fd 2 cannot be redirected (closed, or no temporary file can be made) the block runs uncaptured."""
    with _LOCK:
        if _DEPTH["n"]:
            _DEPTH["n"] += 1
            try:
                yield
            finally:
                _DEPTH["n"] -= 1
            return
        sink = None
        try:
            sink = tempfile.TemporaryFile()
            saved = os.dup(2)
        except OSError:
            if sink is not None:  # fd 2 is closed: the file made for it is not needed
                sink.close()
            yield
            return
        _flush_python_streams()
        os.dup2(sink.fileno(), 2)
        _DEPTH["n"] = 1
        failed = True
        try:
            yield
            failed = False
        finally:
            _DEPTH["n"] = 0
            _flush_python_streams()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            data = sink.read()
            sink.close()
            _emit(what, data, logging.ERROR if failed else logging.DEBUG)


def _flush_python_streams() -> None:
    """Python's own buffered stderr goes out on the fd it was written for."""
    for stream in (sys.stderr, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # a closed or detached stream has nothing to flush
            pass


def _emit(what: str, data: bytes, level: int) -> None:
    if not data:
        return
    native, other = split_native(data)
    if other:
        try:
            while other:
                other = other[os.write(2, other):]
        except OSError:  # stderr gone: nothing to give the bytes back to
            pass
    for line in native:
        logger.log(level, "%s: %s", what, line)
