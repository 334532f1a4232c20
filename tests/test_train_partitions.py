"""Partitioned sampling refuses, before training and on every rank alike, shards where one (rank, worker)
partition holds no sample the filters keep: that worker would raise mid-epoch on its rank alone while the other
ranks wait for it in a collective."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vitonprep import codecs
from vitonprep.shards import Sample, iter_tar_samples, list_shards, write_manifest, write_shard
from vitontrain.data.module import DataConfig, ShardDataModule
from vitontrain.data.shards import ContractError
from vitontrain.data.stream import ShardStream, StreamConfig

FLAGGED = {"flags": [{"check": "left_right", "reason": "mirrored"}], "scores": {"left_right": 0.0}}
BOTH = ("paired", "unpaired")


def _flag_shards(src: Path, dst: Path, flagged: set[int]) -> list[str]:
    """``src``'s one-sample shards written again, the samples of shards ``flagged`` flagged; the shard urls."""
    for tar in list_shards(src):
        samples = []
        for s in iter_tar_samples(tar):
            meta = json.loads(s.members["meta.json"])
            if int(tar.stem) in flagged:
                meta["quality"] = FLAGGED
            samples.append(Sample(s.key, {**s.members, "meta.json": codecs.encode_json(meta)}))
        write_shard(dst, int(tar.stem), samples)
    write_manifest(dst, "partitions-test", {})
    return [str(t) for t in list_shards(dst)]


def _stream(urls: list[str], **kw) -> ShardStream:
    cfg = StreamConfig(**{**dict(height=64, width=48, batch_size=1, shuffle_buffer=0, pairs=BOTH,
                                 sampling="partitioned"), **kw})
    return ShardStream(urls, cfg, 3)


@pytest.mark.parametrize("world, workers", [(3, 1), (1, 3)])
def test_a_partition_with_every_sample_flagged_is_refused_on_every_rank(train_shards, tmp_path, world, workers):
    urls = _flag_shards(train_shards, tmp_path / "s", {1})
    with pytest.raises(ContractError, match=r"rank (1|0), worker (0|1) reads 1 shards .*00001\.tar.*did not flag"):
        _stream(urls).check_partitions(world, workers)
    _stream(urls, skip_flagged=False).check_partitions(world, workers)  # kept when told: nothing to refuse
    _stream(urls).check_partitions(1, 1)  # one partition holding sound samples too


def test_resampled_and_sound_partitions_pass(train_shards, tmp_path):
    urls = _flag_shards(train_shards, tmp_path / "s", set())
    _stream(urls).check_partitions(3, 1)
    _stream(urls, sampling="resampled").check_partitions(3, 1)
    with pytest.raises(ContractError, match="pair in \\['paired'\\]"):  # the bundled train shards are unpaired
        _stream(urls, pairs=("paired",)).check_partitions(1, 1)
    with pytest.raises(ValueError, match="cannot feed 2 ranks × 2 workers"):
        _stream(urls).check_partitions(2, 2)


def test_the_data_module_refuses_at_setup(train_shards, tmp_path):
    """ShardDataModule.setup (run on every rank before training) makes the check; workers count as partitions."""
    urls = _flag_shards(train_shards, tmp_path / "s", {1})
    cfg = DataConfig(height=64, width=48, batch_size=1, shuffle_buffer=0, pairs=BOTH, sampling="partitioned",
                     shards=tuple(urls), num_workers=3, epoch_samples=3)
    with pytest.raises(ContractError, match="did not flag"):
        ShardDataModule(cfg).setup("fit")
    ShardDataModule(DataConfig(**{**cfg.__dict__, "num_workers": 1})).setup("fit")  # one partition: sound ones too
