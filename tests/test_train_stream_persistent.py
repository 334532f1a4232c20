"""Persistent DataLoader workers: the same processes serve every epoch, each pass starts where the shared position
says, and the next epoch's shuffle buffer read ahead by a worker is the one the epoch would have read itself."""

from __future__ import annotations

import os
import threading
from types import SimpleNamespace

import pytest
import torch

from vitontrain.data import stream as stream_mod
from vitontrain.data.module import ResumableLoader, expand_shard_specs
from vitontrain.data.stream import ShardReadError, ShardStream, StreamConfig

BOTH = ("paired", "unpaired")


def small(**kw) -> StreamConfig:
    base = dict(height=64, width=48, batch_size=1, shuffle_buffer=4, seed=3, pairs=BOTH)
    return StreamConfig(**{**base, **kw})


class PidStream(ShardStream):
    """Tags every batch with the process that made it (module level: DataLoader workers may pickle it)."""

    def __iter__(self):
        for batch in super().__iter__():
            batch["pid"] = os.getpid()
            yield batch


def keys(batches) -> list[list[str]]:
    return [b["__key__"] for b in batches]


def test_workers_persist_across_epochs(train_shards):
    urls = expand_shard_specs([str(train_shards)])
    loader = ResumableLoader(PidStream(urls, small(), 4), num_workers=2)
    assert loader.persistent_workers
    first, second = list(loader), list(loader)
    pids = {b["pid"] for b in first}
    assert len(pids) == 2 and os.getpid() not in pids  # two worker processes made the first epoch …
    assert {b["pid"] for b in second} == pids  # … and the same two made the second
    assert loader.state_dict()["epoch"] == 1 and keys(first) != keys(second)  # a new epoch, a new order


def test_resumed_stream_equals_the_uninterrupted_run_over_epochs(train_shards):
    """Three epochs through persistent workers (epochs 1 and 2 start from read-ahead buffers) against fresh loaders
    resumed at every epoch and mid-epoch: the same batches, pixels included."""
    urls = expand_shard_specs([str(train_shards)])
    cfg = small()
    loader = ResumableLoader(ShardStream(urls, cfg, 4), num_workers=2)
    epochs = [list(loader) for _ in range(3)]
    assert [len(e) for e in epochs] == [4, 4, 4]
    for epoch, consumed in ((1, 0), (1, 1), (2, 3)):
        resumed = ResumableLoader(ShardStream(urls, cfg, 4), num_workers=2)
        resumed.load_state_dict({**resumed.state_dict(), "epoch": epoch, "consumed": consumed})
        got = [b for e in range(epoch, 3) for b in list(resumed)]  # the resumed pass, then the next epochs
        want = [b for e in epochs[epoch:] for b in e][consumed:]
        assert keys(got) == keys(want), (epoch, consumed)
        assert all(torch.equal(x["image"], y["image"]) for x, y in zip(got, want, strict=True)), (epoch, consumed)


def fake_worker(monkeypatch) -> None:
    """Iterate in this process as if it were DataLoader worker 0 of 1 (where read-ahead is allowed)."""
    monkeypatch.setattr(stream_mod, "get_worker_info", lambda: SimpleNamespace(id=0, num_workers=1))


def test_read_ahead_buffer_is_the_one_the_epoch_reads(train_shards, monkeypatch):
    urls = expand_shard_specs([str(train_shards)])
    cfg = small(batch_size=2)
    fake_worker(monkeypatch)
    ahead = ShardStream(urls, cfg, 3, read_ahead=True)
    list(ahead)
    assert ahead._ahead is not None and ahead._ahead.key == (1, 0, 1)  # epoch 1's buffer is being read
    ahead.set_position(1)
    with_read_ahead = list(ahead)
    cold = ShardStream(urls, cfg, 3)
    cold.set_position(1)
    without = list(cold)
    assert keys(with_read_ahead) == keys(without)
    assert all(torch.equal(x["image"], y["image"]) for x, y in zip(with_read_ahead, without, strict=True))
    # a position the read-ahead did not guess (a resume into epoch 5) reads its own buffer
    assert ahead._ahead is not None and ahead._ahead.key == (2, 0, 1)
    ahead.set_position(5, 1)
    cold.set_position(5, 1)
    assert keys(list(ahead)) == keys(list(cold))


def test_read_ahead_error_surfaces_in_the_next_pass(train_shards, monkeypatch):
    """A damaged shard met by the read-ahead thread stops the next pass with the shard's message, as the pass
    would have stopped reading it itself."""
    urls = expand_shard_specs([str(train_shards)])
    read = stream_mod.raw_samples

    def damaged_in_thread(url):
        if threading.current_thread() is not threading.main_thread():
            raise ShardReadError(f"shard {url}: truncated or damaged tar")
        return read(url)

    monkeypatch.setattr(stream_mod, "raw_samples", damaged_in_thread)
    fake_worker(monkeypatch)
    stream = ShardStream(urls, small(), 2, read_ahead=True)
    assert len(list(stream)) == 2  # epoch 0, read in this thread
    assert stream._ahead is not None and stream._ahead.key == (1, 0, 1)
    stream.set_position(1)
    with pytest.raises(ShardReadError, match="damaged"):
        list(stream)
    assert stream._ahead is None


def test_stream_pickles_without_its_thread(train_shards, monkeypatch):
    import pickle

    urls = expand_shard_specs([str(train_shards)])
    fake_worker(monkeypatch)
    stream = ShardStream(urls, small(), 2, read_ahead=True)
    list(stream)
    assert stream._ahead is not None
    copy = pickle.loads(pickle.dumps(stream))
    assert copy._ahead is None and copy.epoch == 0 and copy.read_ahead
