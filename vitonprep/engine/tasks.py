"""Shard tasks and the work that makes them: plain data and callables that pickle to worker processes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from vitonprep.shards import Location, ShardResult


@dataclass(frozen=True)
class ShardTask:
    index: int
    out_dir: Location  # a local folder or an fsspec URL
    items: tuple[Any, ...]


#: makes one shard and writes it (`vitonprep.shards.write_shard`); a failed sample is a recorded Failure, a failed
#: shard an exception
ShardWork = Callable[[ShardTask], ShardResult]

#: called once in each worker process (per run); returns the work (so models load once per process)
WorkFactory = Callable[[], ShardWork]

#: called after each shard: (result, shards_done, shards_total)
ProgressCallback = Callable[[ShardResult, int, int], None]


@dataclass(frozen=True)
class Ready:
    """A `WorkFactory` for work with no per-process state to build: returns ``work`` as it is."""

    work: ShardWork

    def __call__(self) -> ShardWork:
        return self.work


def chunk(items: Sequence[Any], size: int) -> list[tuple[Any, ...]]:
    if size < 1:
        raise ValueError("samples per shard must be >= 1")
    return [tuple(items[i : i + size]) for i in range(0, len(items), size)]
