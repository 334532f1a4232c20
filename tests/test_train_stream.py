"""The training stream and data module: determinism, exact resume, rank partitioning, contract errors."""

from __future__ import annotations

import io
import tarfile

import pytest
import torch

from vitontrain.data import stream as stream_mod
from vitontrain.data.augment import AugmentConfig
from vitontrain.data.module import DataConfig, ResumableLoader, ShardDataModule, expand_shard_specs
from vitontrain.data.shards import ContractError
from vitontrain.data.stream import ShardStream, StreamConfig
from vitontrain.data.transforms import normalise_batch

BOTH = ("paired", "unpaired")


def small(**kw) -> StreamConfig:
    base = dict(height=64, width=48, batch_size=2, shuffle_buffer=4, seed=3, pairs=BOTH)
    return StreamConfig(**{**base, **kw})


def keys(batches) -> list[list[str]]:
    return [b["__key__"] for b in batches]


def test_stream_batches_follow_the_model_contract(train_shards):
    urls = expand_shard_specs([str(train_shards)])
    shipped = next(iter(ShardStream(urls, small(), batches_per_rank=1)))
    assert shipped["image"].dtype == torch.uint8 and shipped["agn_mask"].dtype == torch.uint8  # 4x less IPC
    batch = normalise_batch(shipped)
    assert batch["image"].shape == (2, 3, 64, 48) and batch["agn_mask"].shape == (2, 1, 64, 48)
    for name in ("image", "agn", "image_densepose", "cloth"):
        assert batch[name].dtype == torch.float32 and -1 <= batch[name].min() and batch[name].max() <= 1
    for name in ("agn_mask", "cloth_mask", "gt_cloth_warped_mask"):
        assert set(batch[name].unique().tolist()) <= {0.0, 1.0}


def test_same_seed_same_stream_other_seed_other_stream(train_shards):
    urls = expand_shard_specs([str(train_shards)])
    a = list(ShardStream(urls, small(), 4))
    b = list(ShardStream(urls, small(), 4))
    c = list(ShardStream(urls, small(seed=4), 4))
    assert keys(a) == keys(b) and all(torch.equal(x["image"], y["image"]) for x, y in zip(a, b, strict=True))
    assert keys(a) != keys(c) or not all(torch.equal(x["image"], y["image"]) for x, y in zip(a, c, strict=True))


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resumed_loader_yields_the_rest_of_the_epoch(train_shards, num_workers):
    urls = expand_shard_specs([str(train_shards)])
    loader = ResumableLoader(ShardStream(urls, small(), 4), num_workers=num_workers)
    full = list(loader)
    assert len(full) == 4
    resumed = ResumableLoader(ShardStream(urls, small(), 4), num_workers=num_workers)
    resumed.load_state_dict({**loader.state_dict(), "epoch": 0, "consumed": 1})
    rest = list(resumed)
    assert keys(rest) == keys(full[1:])
    assert all(torch.equal(x["image"], y["image"]) for x, y in zip(rest, full[1:], strict=True))  # augmentation too
    assert resumed.state_dict()["consumed"] == 4
    # an epoch saved as complete resumes at the next epoch, which is a different order
    nxt = ResumableLoader(ShardStream(urls, small(), 4), num_workers=num_workers)
    nxt.load_state_dict(loader.state_dict())
    second = list(nxt)
    assert nxt.state_dict()["epoch"] == 1 and len(second) == 4


def test_resume_with_three_workers_at_every_offset(train_shards):
    urls = expand_shard_specs([str(train_shards)])
    cfg = small(batch_size=1)
    full = keys(ResumableLoader(ShardStream(urls, cfg, 6), num_workers=3))
    assert len(full) == 6
    for consumed in (1, 2, 4):
        resumed = ResumableLoader(ShardStream(urls, cfg, 6), num_workers=3)
        resumed.load_state_dict({**resumed.state_dict(), "epoch": 0, "consumed": consumed})
        assert resumed.state_dict()["consumed"] == consumed  # a pending position is what a checkpoint would save
        assert keys(resumed) == full[consumed:], consumed


def test_partitioned_ranks_read_disjoint_shards(train_shards, monkeypatch):
    urls = expand_shard_specs([str(train_shards)])
    seen = {}
    for rank in (0, 1):
        monkeypatch.setattr(stream_mod, "_rank_and_world", lambda r=rank: (r, 2))
        batches = list(ShardStream(urls, small(sampling="partitioned", batch_size=1), 3))
        seen[rank] = {k for b in batches for k in b["__key__"]}
    assert seen[0] and seen[1] and not (seen[0] & seen[1])
    monkeypatch.setattr(stream_mod, "_rank_and_world", lambda: (3, 4))
    with pytest.raises(ValueError, match="cannot feed 4 ranks"):
        next(iter(ShardStream(urls, small(sampling="partitioned"), 1)))


def test_paired_only_default_fails_loudly_on_unpaired_shards(train_shards):
    urls = expand_shard_specs([str(train_shards)])
    with pytest.raises(ContractError, match="paired"):
        next(iter(ShardStream(urls, small(pairs=("paired",)), 1)))


def test_foreign_tar_is_a_contract_error(tmp_path):
    tar_path = tmp_path / "foreign.tar"
    with tarfile.open(tar_path, "w") as tar:
        for name, data in (("a.txt", b"hello"), ("a.meta.json", b'{"pair": "paired"}')):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(ContractError, match="foreign.tar.*lacks"):
        next(iter(ShardStream([str(tar_path)], small(), 1)))


def test_shard_specs(train_shards, tmp_path):
    tars = sorted(str(p) for p in train_shards.glob("*.tar"))
    assert expand_shard_specs([str(train_shards)]) == tars
    assert expand_shard_specs([str(train_shards / "*.tar")]) == tars
    assert expand_shard_specs([str(train_shards / "{00000..00002}.tar")]) == tars
    with pytest.raises(FileNotFoundError, match="nothing"):
        expand_shard_specs([str(tmp_path / "nothing")])
    with pytest.raises(FileNotFoundError, match="missing"):
        expand_shard_specs([str(train_shards / "{00000..00005}.tar")])


def test_datamodule_epoch_length_and_preview(train_shards):
    dm = ShardDataModule(DataConfig(shards=(str(train_shards),), height=64, width=48, batch_size=2, num_workers=2,
                                    pairs=BOTH, augment=AugmentConfig(enabled=False)))
    dm.setup("fit")
    assert dm.batches_per_rank == 2  # 3 samples / batch 2 → 2 batches, a multiple of the 2 workers
    preview = dm.preview_batch(3, unpaired=True)
    paired = dm.preview_batch(3)
    assert preview["image"].shape == (3, 3, 64, 48)
    assert torch.equal(preview["cloth"][0], paired["cloth"][1])  # garments rolled by one
    only_paired = ShardDataModule(DataConfig(shards=(str(train_shards),), height=64, width=48, pairs=("paired",)))
    with pytest.raises(ValueError, match="no samples"):  # the grids show what training reads: none here
        only_paired.preview_batch(2)


def test_pipe_and_fsspec_urls_read_like_local_paths(train_shards):
    import fsspec

    local = expand_shard_specs([str(train_shards)])
    fs = fsspec.filesystem("memory")
    remote = []
    for path in local:
        url = f"memory://bench/{path.rsplit('/', 1)[-1]}"
        with fs.open(url, "wb") as fh, open(path, "rb") as src:
            fh.write(src.read())
        remote.append(url)
    piped = [f"pipe:cat {p}" for p in local]
    cfg = small(augment=AugmentConfig(enabled=False), shuffle_buffer=0, batch_size=1)
    expected = keys(ShardStream(local, cfg, 3))
    assert keys(ShardStream(remote, cfg, 3)) == expected
    assert keys(ShardStream(piped, cfg, 3)) == expected
