"""The output folder of a build or a convert: where it may be, what ``--overwrite`` may delete, one writer at a time.

Inputs are never deleted: an output that equals, contains or lies inside an input (the raw photos, the input
shards, the dataset being converted) or another output (the export folder) is refused before anything is touched,
and ``--overwrite`` only clears a folder that holds what vitonprep writes. A lock file in the output folder keeps a
second build from writing into the same folder at the same time; the kernel drops it when its process dies, so a
killed build never leaves a stale lock behind.
"""

from __future__ import annotations

import logging
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping

from vitonprep.errors import ConfigError
from vitonprep.shards import ShardStore

logger = logging.getLogger(__name__)

#: the lock file kept in every local output folder (hidden: no reader of shards looks at it)
LOCK_NAME = ".vitonprep.lock"
#: top-level names by which a folder is recognised as vitonprep output (shards) or a VITON-HD export
SHARD_MARKERS = ("_plan.json", "manifest.json", "_config.json", "validation_report.json")
EXPORT_MARKERS = ("train_pairs.txt", "test_pairs.txt", "train", "test")


def _local(location: str | os.PathLike) -> Path | None:
    text = str(location)
    if text.startswith("file://"):
        return Path(text[len("file://"):])
    return None if "://" in text else Path(text)


def _normalised(location: str | os.PathLike) -> tuple[str, tuple[str, ...]]:
    """(protocol, path parts) with symbolic links and ``..`` resolved for local folders, so two spellings of one
    folder compare equal."""
    local = _local(location)
    if local is not None:
        return "file", Path(os.path.realpath(local)).parts
    protocol, _, rest = str(location).partition("://")
    return protocol.lower(), tuple(p for p in rest.split("/") if p not in ("", "."))


def relation(a: str | os.PathLike, b: str | os.PathLike) -> str | None:
    """How folder ``a`` stands to folder ``b``: "equals", "contains", "lies inside", or None when apart."""
    (pa, xa), (pb, xb) = _normalised(a), _normalised(b)
    if pa != pb:
        return None
    if xa == xb:
        return "equals"
    if xb[: len(xa)] == xa:
        return "contains"
    if xa[: len(xb)] == xb:
        return "lies inside"
    return None


def refuse_overlap(what: str, location: str | os.PathLike, others: Mapping[str, str | os.PathLike | None],
                   overwrite: bool) -> None:
    """ConfigError when output ``location`` (named ``what``) would write into or delete one of ``others`` (name ->
    folder). Without ``overwrite`` only sameness is refused (the output's files would become inputs); with it any
    nesting is, since clearing the output would delete the other."""
    for name, other in others.items():
        if other is None:
            continue
        rel = relation(location, other)
        if rel is None or (rel != "equals" and not overwrite):
            continue
        consequence = "clearing it (--overwrite) would delete" if overwrite else "writing there would mix into"
        raise ConfigError(f"{what} {location} {rel} {name} {other}: {consequence} {name}; choose a separate folder")


def _looks_like(folder: Path, markers: tuple[str, ...]) -> bool:
    names = {p.name for p in folder.iterdir()} - {LOCK_NAME}  # the lock alone: a build killed at its start
    return not names or bool(names & set(markers)) or any(n.endswith(("_stats.json", ".tar")) for n in names)


def clear_output(location: str | os.PathLike, kind: str = "shards") -> None:
    """Delete what an earlier run wrote into ``location`` (``--overwrite``), keeping the folder and its lock file.

    A local folder that does not look like vitonprep output (``kind`` "shards") or a VITON-HD export ("export") is
    refused: a mistyped OUT must not wipe an unrelated folder. Remote outputs are removed as a whole."""
    local = _local(location)
    if local is None:
        store = ShardStore(str(location))  # ConfigError for an unknown protocol or a missing fsspec driver
        if store.fs.exists(store.root):
            store.fs.rm(store.root, recursive=True)
        return
    if not local.exists():
        return
    if not local.is_dir() or local.is_symlink():
        raise ConfigError(f"{local} is not a folder vitonprep wrote (a file or a link); --overwrite leaves it alone")
    markers = SHARD_MARKERS if kind == "shards" else EXPORT_MARKERS
    if not _looks_like(local, markers):
        raise ConfigError(f"{local} holds files vitonprep did not write (no shards, manifest or "
                          f"{'pairs lists' if kind == 'export' else 'stats'}); --overwrite only clears vitonprep "
                          "output: remove it yourself or choose another folder")
    for child in local.iterdir():
        if child.name == LOCK_NAME:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


_HELD: dict[str, tuple[int, int]] = {}  # lock path -> (fd, depth): a process may nest its own lock


@contextmanager
def output_lock(location: str | os.PathLike) -> Iterator[None]:
    """Hold the output folder's lock for the block; ConfigError at once if another process holds it.

    An ``flock`` on a file in the folder: released by the kernel when the process ends however it ends (no stale
    lock after a kill), not inherited by worker processes (Python's descriptors are not inheritable). Remote
    outputs and platforms without ``fcntl`` are not locked."""
    local = _local(location)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        fcntl = None
    if local is None or fcntl is None:
        logger.debug("%s: no lock (remote output or no fcntl)", location)
        yield
        return
    local.mkdir(parents=True, exist_ok=True)
    path = os.path.realpath(local / LOCK_NAME)
    if path in _HELD:
        fd, depth = _HELD[path]
        _HELD[path] = (fd, depth + 1)
        try:
            yield
        finally:
            fd, depth = _HELD[path]
            _HELD[path] = (fd, depth - 1)
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "?"
        os.close(fd)
        raise ConfigError(f"another vitonprep process (pid {holder}) is writing into {local}; wait for it to end "
                          "or choose another output folder") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _HELD[path] = (fd, 1)
    try:
        yield
    finally:
        del _HELD[path]
        os.close(fd)  # closing the only descriptor releases the flock
