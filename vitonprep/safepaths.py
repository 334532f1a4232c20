"""Paths named from data: the one place that turns untrusted names into file paths.

Shards, manifests and ``meta.json`` are untrusted input: a ``person_id`` of ``../../x`` or a tar member named
``/etc/x`` must never become a path. Every file name derived from data (sample keys, person/cloth ids, splits,
categories, member names) goes through :func:`safe_name` (a plain name: the sample-key alphabet, no dots, no
separators) and every such path through :func:`safe_path`, which also refuses a result that resolves outside
its root (a link left inside the root cannot lead out). :func:`write_atomic` writes a file without ever
following a link at its final or temporary name.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from vitonprep.schema import KEY_PATTERN

#: longest name accepted (file systems allow 255 bytes; suffixes are added to it)
MAX_NAME_LENGTH = 200


class UnsafeName(ValueError):
    """A name or path from data that is not a plain name, or that would lead outside its root."""


def safe_name(value: object, what: str) -> str:
    """``value`` if it is a plain name (letters, digits, ``_``, ``-``; what sample keys are made of), else
    UnsafeName saying ``what`` it was."""
    if not isinstance(value, str) or not KEY_PATTERN.match(value) or len(value) > MAX_NAME_LENGTH:
        raise UnsafeName(f"{what} {value!r} is not a plain name (letters, digits, '_' and '-' only)")
    return value


def safe_path(root: Path, template: str, **names: object) -> Path:
    """``root / template.format(**names)``, where ``template`` is ours (layout folders, suffixes) and every value
    of ``names`` comes from data and must pass :func:`safe_name` (under its keyword as ``what``).

    The result must resolve inside ``root``: links already present below ``root`` are followed by the check, so
    one that points elsewhere makes the path refused rather than written through.
    """
    checked = {k: safe_name(v, k) for k, v in names.items()}
    rel = Path(template.format(**checked))
    if rel.is_absolute() or ".." in rel.parts:  # templates are ours; this guards a wrong one
        raise UnsafeName(f"layout {template!r} is not relative")
    path = root / rel
    base = root.resolve()
    if not path.resolve().is_relative_to(base):
        raise UnsafeName(f"{path} resolves to {path.resolve()}, outside {root}")
    return path


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
