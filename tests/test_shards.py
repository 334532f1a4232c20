import json

import pytest

from vitonprep.runner import ShardTask, chunk, run_shard_tasks
from vitonprep.shards import (
    Sample,
    completed_shards,
    is_shard_complete,
    iter_tar_samples,
    shard_name,
    stats_name,
    write_manifest,
    write_shard,
)


def _samples(n, prefix="k"):
    return [Sample(f"{prefix}{i:03d}", {"meta.json": json.dumps({"i": i}).encode(), "image.jpg": bytes([i]) * 10})
            for i in range(n)]


def test_write_shard_is_deterministic_and_ordered(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_shard(a, 0, _samples(5))
    write_shard(b, 0, list(reversed(_samples(5))))
    assert (a / shard_name(0)).read_bytes() == (b / shard_name(0)).read_bytes()
    keys = [s.key for s in iter_tar_samples(a / shard_name(0))]
    assert keys == sorted(keys)
    # members of a sample are contiguous and in schema order (image before meta)
    first = next(iter_tar_samples(a / shard_name(0)))
    assert list(first.members) == ["image.jpg", "meta.json"]


def test_duplicate_key_in_one_shard_is_refused(tmp_path):
    with pytest.raises(ValueError, match="duplicate sample key"):
        write_shard(tmp_path, 0, _samples(2) + _samples(1))


def test_stats_file_marks_completion_and_leftovers_are_cleared(tmp_path):
    write_shard(tmp_path, 0, _samples(3))
    assert is_shard_complete(tmp_path, 0)
    # a killed run leaves a tar without stats and a partial file: not complete, cleared on rewrite
    (tmp_path / shard_name(1)).write_bytes(b"half a tar")
    (tmp_path / (shard_name(1) + ".partial")).write_bytes(b"x")
    assert not is_shard_complete(tmp_path, 1)
    assert completed_shards(tmp_path) == [0]
    write_shard(tmp_path, 1, _samples(2, "m"))
    assert completed_shards(tmp_path) == [0, 1]
    assert not (tmp_path / (shard_name(1) + ".partial")).exists()
    manifest = write_manifest(tmp_path, "t", {})
    assert manifest["__kind__"] == "wids-shard-index-v1"
    assert [s["nsamples"] for s in manifest["shardlist"]] == [3, 2]
    assert manifest["vitonprep"]["nsamples"] == 5


def _work(task):
    task.out_dir.mkdir(parents=True, exist_ok=True)
    (task.out_dir / f"calls_{task.index}").write_text("x")
    return write_shard(task.out_dir, task.index, [Sample(str(i), {"meta.json": b"{}"}) for i in task.items])


def test_runner_skips_finished_shards(tmp_path):
    tasks = [ShardTask(i, tmp_path, items) for i, items in enumerate(chunk(list(range(7)), 3))]
    first = run_shard_tasks(tasks[:2], _work)
    assert [r.nsamples for r in first] == [3, 3]
    for p in tmp_path.glob("calls_*"):
        p.unlink()
    results = run_shard_tasks(tasks, _work)
    assert [r.skipped for r in results] == [True, True, False]
    assert sorted(p.name for p in tmp_path.glob("calls_*")) == ["calls_2"]
    assert sum(r.nsamples for r in results) == 7


def test_runner_with_two_processes_matches_one(tmp_path):
    tasks1 = [ShardTask(i, tmp_path / "one", items) for i, items in enumerate(chunk(list(range(6)), 2))]
    tasks2 = [ShardTask(i, tmp_path / "two", items) for i, items in enumerate(chunk(list(range(6)), 2))]
    run_shard_tasks(tasks1, _work, workers=1)
    run_shard_tasks(tasks2, _work, workers=2)
    for i in range(3):
        assert (tmp_path / "one" / shard_name(i)).read_bytes() == (tmp_path / "two" / shard_name(i)).read_bytes()
        assert (tmp_path / "two" / stats_name(i)).is_file()


def test_fsspec_destination_same_bytes_and_same_completion_marker(tmp_path):
    import fsspec

    from vitonprep.shards import ShardStore, read_manifest, read_stats

    url = "memory://vitonprep-test/shards"
    fs = fsspec.filesystem("memory")
    write_shard(tmp_path, 0, _samples(4))
    write_shard(url, 0, _samples(4))
    assert fs.cat_file("/vitonprep-test/shards/" + shard_name(0)) == (tmp_path / shard_name(0)).read_bytes()
    assert read_stats(url, 0) == json.loads((tmp_path / stats_name(0)).read_text())
    store = ShardStore(url)
    with store.open_read(shard_name(0)) as fh:
        assert [s.key for s in iter_tar_samples(fh)] == [f"k{i:03d}" for i in range(4)]
    # a tar without its stats file (a run killed between the two) is not complete, and is replaced on rewrite
    fs.pipe_file("/vitonprep-test/shards/" + shard_name(1), b"half a tar")
    assert is_shard_complete(url, 0) and not is_shard_complete(url, 1)
    assert completed_shards(url) == [0]
    write_shard(url, 1, _samples(2, "m"))
    assert completed_shards(url) == [0, 1]
    write_manifest(url, "t", {})
    assert read_manifest(url)["vitonprep"]["nsamples"] == 6
    fs.rm("/vitonprep-test", recursive=True)


def test_runner_resumes_into_an_fsspec_destination():
    import fsspec

    url = "memory://vitonprep-runner/out"
    tasks = [ShardTask(i, url, items) for i, items in enumerate(chunk(list(range(5)), 2))]
    calls = []

    def work(task):  # in-process (workers=1): memory:// is per process
        calls.append(task.index)
        return write_shard(task.out_dir, task.index, [Sample(str(i), {"meta.json": b"{}"}) for i in task.items])

    run_shard_tasks(tasks[:2], work)
    results = run_shard_tasks(tasks, work)
    assert calls == [0, 1, 2] and [r.skipped for r in results] == [True, True, False]
    assert sum(r.nsamples for r in results) == 5
    fsspec.filesystem("memory").rm("/vitonprep-runner", recursive=True)


def _thread_limits_work(task):
    """Records the compute threads the worker runs with, in the shard's meta."""
    import cv2
    from threadpoolctl import threadpool_info

    blas = sorted({p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"})
    meta = json.dumps({"blas": blas, "cv2": cv2.getNumThreads()}).encode()
    return write_shard(task.out_dir, task.index, [Sample(f"t{task.index}", {"meta.json": meta})])


@pytest.mark.parametrize("workers", [1, 2])
def test_build_workers_compute_on_one_thread(tmp_path, workers):
    # OpenBLAS's idle threads spin after a matrix product: a worker that kept them doubled its CPU per person
    import cv2
    from threadpoolctl import threadpool_info, threadpool_limits

    tasks = [ShardTask(i, tmp_path, (i,)) for i in range(2)]
    with threadpool_limits(2, user_api="blas"):
        cv2_before = cv2.getNumThreads()
        blas_before = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
        run_shard_tasks(tasks, _thread_limits_work, workers=workers)
        # an in-process build gives the caller its threads back
        assert [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"] == blas_before
        assert cv2.getNumThreads() == cv2_before
    for s in (s for i in range(2) for s in iter_tar_samples(tmp_path / shard_name(i))):
        assert json.loads(s.members["meta.json"]) == {"blas": [1], "cv2": 1}


def _worker_facts(name):
    import os
    import sys

    return {"env": os.environ.get(name), "preloaded": "vitonprep.preload" in sys.modules, "pid": os.getpid()}


def test_pool_workers_start_preloaded_and_see_the_callers_environment(monkeypatch):
    # workers are forked from a server that imported the pipeline once (no imports of their own), yet each pool
    # sees the environment of its caller at the time, as spawned workers did: fault injection and weight paths
    # are set through it, possibly after the server started
    import multiprocessing as mp

    from vitonprep.runner import map_in_processes, pool_context

    if "forkserver" not in mp.get_all_start_methods():
        pytest.skip("no forkserver on this platform: workers are spawned")
    assert pool_context().get_start_method() == "forkserver"
    name = "VITONPREP_TEST_POOL_ENV"
    monkeypatch.setenv(name, "first")
    first = list(map_in_processes(_worker_facts, [name] * 4, workers=2))
    monkeypatch.setenv(name, "second")
    second = list(map_in_processes(_worker_facts, [name] * 4, workers=2))
    monkeypatch.delenv(name)
    third = list(map_in_processes(_worker_facts, [name] * 4, workers=2))
    assert [f["env"] for f in first] == ["first"] * 4 and [f["env"] for f in second] == ["second"] * 4
    assert [f["env"] for f in third] == [None] * 4
    assert all(f["preloaded"] for f in first + second + third)
    assert len({f["pid"] for f in first + second + third}) >= 3  # new workers for every pool
