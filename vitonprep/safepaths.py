"""Paths named from data: the one place that turns untrusted names into file paths.

Shards, manifests and ``meta.json`` are untrusted input: a ``person_id`` of ``../../x`` or a tar member named
``/etc/x`` must never become a path. Every file name derived from data (sample keys, person/cloth ids, splits,
categories, member names) goes through :func:`safe_name` (a plain name: the sample-key alphabet, no dots, no
separators) and every such path through :func:`safe_path`, which also refuses a result that resolves outside
its root (a link left inside the root cannot lead out). Both are defined in ``vitonprep.schema``, the one
module vitontrain may import, so the trainer's outputs follow the same rule. :func:`write_atomic` writes a file
without ever following a link at its final or temporary name.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from vitonprep.schema import UnsafeName, safe_name, safe_path

__all__ = ["UnsafeName", "safe_name", "safe_path", "write_atomic"]


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``path`` through a fresh temporary file in its folder and a rename.

    ``mkstemp`` creates the temporary file exclusively (a planted link cannot be followed) and the rename
    replaces a link at ``path`` instead of writing into what it points to; a failure leaves no partial file.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:50]}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
