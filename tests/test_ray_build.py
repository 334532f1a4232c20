"""`vitonprep build --distributor ray` on a local 2-CPU Ray instance: same shards as the local runner, a worker
killed mid-task is retried with every sample exactly once, reruns skip finished shards, shard-to-shard input, and the
driver's side of a lost cluster (the multi-node cases are in test_ray_lost_node.py)."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from helpers.faults import EXIT_ONCE_ENV, ExitOnceWork
from helpers.shards import samples_by_key
from typer.testing import CliRunner

import vitonprep.build
from vitonprep.build import BuildOptions, build_dataset
from vitonprep.build_worker import BuildWork
from vitonprep.cli import app
from vitonprep.config import load_pipeline_config
from vitonprep.distribute import ray_build as ray_build_module
from vitonprep.distribute.ray_build import RayBuildDistributor
from vitonprep.distribute.ray_runner import RayOptions
from vitonprep.engine import ShardLedger, ShardTask
from vitonprep.errors import ConfigError
from vitonprep.raw import plan_raw
from vitonprep.shards import completed_shards, list_shards, stats_name
from vitonprep.validate import validate_shards

from conftest import raw_from_bundled_pairs

ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'vitonprep[ray]'")

PERSONS = ("00034_00.jpg", "00035_00.jpg")  # one shard each: enough to show skipping and retrying



@pytest.fixture(scope="module")
def fault_file(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fault") / "exit_once"


@pytest.fixture(scope="module")
def ray_local(fault_file):
    """One local Ray instance for the module; workers see the fault-injection variable (armed per test) and can
    import the tests folder (the work factories here and in helpers.faults pickle by reference)."""
    path = os.pathsep.join(p for p in (str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")) if p)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {EXIT_ONCE_ENV: str(fault_file), "PYTHONPATH": path}})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def raw(tmp_path_factory, data_dir) -> Path:
    return raw_from_bundled_pairs(tmp_path_factory.mktemp("raw") / "raw", PERSONS)


def _cfg(**overrides):
    return load_pipeline_config("default", {"samples_per_shard": 1, **overrides})


@pytest.fixture(scope="module")
def local_build(raw, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "shards"
    report = build_dataset(_cfg(), raw, out)
    assert report.nsamples == len(PERSONS), report.failures
    return out


@pytest.fixture(scope="module")
def ray_build(ray_local, raw, tmp_path_factory):
    out = tmp_path_factory.mktemp("ray") / "shards"
    report = build_dataset(_cfg(), raw, f"file://{out}", BuildOptions(distributor="ray", workers=2))
    return out, report


def test_ray_build_equals_local_build(ray_build, local_build):
    out, report = ray_build
    assert report.nsamples == len(PERSONS) and not report.failed_shards and not report.failures
    assert report.nshards == 2 and report.skipped_shards == 0
    local, dist = samples_by_key(local_build), samples_by_key(out)
    assert sorted(dist) == sorted(local) and len(local) == len(PERSONS)
    for key, members in local.items():  # every map, byte for byte (the builds are deterministic)
        assert set(dist[key]) == set(members)
        for name, data in members.items():
            assert dist[key][name] == data, f"{key}.{name} differs"
    assert validate_shards(out).ok
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["vitonprep"]["nsamples"] == len(PERSONS)


def test_stage_actors_with_batches_give_the_same_maps(ray_local, raw, local_build, tmp_path):
    from PIL import Image

    # plus a photo without a person: its failure is raised inside the pose actor and must come back as a record
    wall = tmp_path / "raw"
    shutil.copytree(raw, wall)
    Image.new("RGB", (768, 1024), (230, 230, 230)).save(wall / "person" / "wall.jpg")
    cloth = sorted((wall / "cloth").iterdir())[0].name
    (wall / "pairs.txt").write_text((raw / "pairs.txt").read_text() + f"wall.jpg {cloth}\n")
    # pose gets its own actor (1 CPU, batches of 2); the one CPU left is the shard worker's
    cfg = _cfg(samples_per_shard=3, **{"stages.pose.resources": {"actors": 1, "num_cpus": 1, "batch_size": 2}})
    report = build_dataset(cfg, wall, tmp_path / "out", BuildOptions(distributor="ray"))
    assert report.nsamples == len(PERSONS) and not report.failed_shards
    assert [(Path(f.source).name, f.stage) for f in report.failures] == [("wall.jpg", "pose")]
    assert report.stage_seconds["pose"] > 0  # timed inside the actor, reported through the stats
    local, dist = samples_by_key(local_build), samples_by_key(tmp_path / "out")
    assert sorted(dist) == sorted(local)
    assert {(k, m) for k in local for m in local[k] if dist[k].get(m) != local[k][m]} == set()
    # a request the cluster cannot place is refused instead of waiting forever
    greedy = _cfg(**{"stages.pose.resources": {"actors": 2, "num_cpus": 1}})
    with pytest.raises(ConfigError, match="CPU"):
        build_dataset(greedy, raw, tmp_path / "greedy", BuildOptions(distributor="ray"))
    gpu = _cfg(**{"stages.parsing.resources": {"actors": 1, "num_gpus": 1}})
    with pytest.raises(ConfigError, match="GPU"):
        build_dataset(gpu, raw, tmp_path / "gpu", BuildOptions(distributor="ray"))


def test_worker_killed_mid_task_is_retried_and_every_sample_is_written_once(ray_local, raw, local_build,
                                                                             fault_file, tmp_path, monkeypatch):
    # the first shard task to delete the file calls os._exit after making its samples, before writing them
    monkeypatch.setattr(vitonprep.build, "BuildWork", ExitOnceWork)
    fault_file.write_text("exit once")
    try:
        report = build_dataset(_cfg(), raw, tmp_path / "out",
                               BuildOptions(distributor="ray", workers=2, max_shard_retry=1))
    finally:
        fired = not fault_file.exists()
        fault_file.unlink(missing_ok=True)
    assert fired, "no worker process reached the fault-injection point"
    assert not report.failed_shards and report.nsamples == len(PERSONS)
    dist = samples_by_key(tmp_path / "out")  # asserts no key twice
    assert dist == samples_by_key(local_build)
    assert completed_shards(tmp_path / "out") == [0, 1]
    assert not list((tmp_path / "out").glob("*.partial"))


def test_rerun_skips_finished_shards(ray_local, raw, ray_build):
    out, _ = ray_build
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in list_shards(out)}
    result = CliRunner().invoke(app, ["build", str(raw), f"file://{out}", "--distributor", "ray",
                                      "--samples-per-shard", "1", "--sheet", "0"])
    assert result.exit_code == 0, result.output
    assert "2 resumed, 0 failures" in result.output and "sound" in result.output
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in list_shards(out)} == before
    # an unfinished shard (tar without stats, as a killed run leaves it) is the only one made again
    (out / stats_name(1)).unlink()
    report = build_dataset(_cfg(), raw, f"file://{out}", BuildOptions(distributor="ray"))
    assert report.skipped_shards == 1 and report.nsamples == len(PERSONS)
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in list_shards(out)}
    assert after["00000.tar"] == before["00000.tar"]
    assert after["00001.tar"][1] == before["00001.tar"][1] and after["00001.tar"][0] != before["00001.tar"][0]


def test_shard_to_shard_reruns_the_stages_on_stored_photos(ray_local, local_build, tmp_path):
    report = build_dataset(_cfg(), f"file://{local_build}", tmp_path / "again", BuildOptions(distributor="ray"))
    assert report.nsamples == len(PERSONS) and not report.failures and report.nshards == 2
    old, new = samples_by_key(local_build), samples_by_key(tmp_path / "again")
    assert sorted(new) == sorted(old)
    for key in old:
        assert new[key]["image.jpg"] == old[key]["image.jpg"]  # the stored photos are not re-encoded
        assert new[key]["cloth.jpg"] == old[key]["cloth.jpg"]
        meta, old_meta = json.loads(new[key]["meta.json"]), json.loads(old[key]["meta.json"])
        assert meta["person_file"] == old_meta["person_file"]
        assert meta["rebuilt_from"]["shard"].endswith(".tar")
        assert set(new[key]) == set(old[key])
    assert validate_shards(tmp_path / "again").ok


class _FailingShard:
    """Work factory for the generic runner: shard 1 always raises; every attempt leaves a file behind."""

    def __init__(self, log: Path):
        self.log = log

    def __call__(self):
        from vitonprep.shards import Sample, write_shard

        def work(task):
            (self.log / f"attempt_{task.index}_{len(list(self.log.glob(f'attempt_{task.index}_*')))}").touch()
            if task.index == 1:
                raise ValueError("this shard is broken")
            return write_shard(task.out_dir, task.index, [Sample(f"s{i}", {"meta.json": b"{}"}) for i in task.items])

        return work


def test_a_shard_that_keeps_failing_is_retried_a_bounded_number_of_times(ray_local, tmp_path):
    from vitonprep.distribute import RayOptions, run_shard_tasks_ray

    tasks = [ShardTask(i, tmp_path / "out", (i,)) for i in range(3)]
    seen = []
    results = run_shard_tasks_ray(tasks, _FailingShard(tmp_path), RayOptions(workers=1, max_shard_retry=2),
                                  progress=lambda r, done, total: seen.append((r.index, done, total)))
    assert [bool(r.error) for r in results] == [False, True, False]
    assert "ValueError: this shard is broken" in results[1].error
    assert len(list(tmp_path.glob("attempt_1_*"))) == 3  # the first attempt and two retries, then it gives up
    assert len(list(tmp_path.glob("attempt_0_*"))) == len(list(tmp_path.glob("attempt_2_*"))) == 1
    assert completed_shards(tmp_path / "out") == [0, 2]
    assert sorted(i for i, _, _ in seen) == [0, 1, 2]  # one progress call per shard, failed ones included
    assert [d for _, d, _ in seen] == [1, 2, 3] and {t for _, _, t in seen} == {3}


def test_cli_builds_into_an_fsspec_url(raw, local_build):
    import fsspec

    # memory:// lives in this process, so the local runner in this process (-j 1) is the one that can write there
    result = CliRunner().invoke(app, ["build", str(raw), "memory://cli-test/shards", "--samples-per-shard", "1",
                                      "-j", "1"])
    assert result.exit_code == 0, result.output
    assert "skipped" in result.output and "remote" in result.output
    fs = fsspec.filesystem("memory")
    for tar in list_shards(local_build):
        assert fs.cat_file(f"/cli-test/shards/{tar.name}") == tar.read_bytes()
    assert json.loads(fs.cat_file("/cli-test/shards/manifest.json"))["vitonprep"]["nsamples"] == len(PERSONS)
    fs.rm("/cli-test", recursive=True)


def test_stage_resources_in_the_yaml_are_checked():
    cfg = _cfg(**{"stages.parsing.resources": {"actors": 2, "num_gpus": 0.5, "batch_size": 8}})
    assert cfg.stages.parsing.resources.num_gpus == 0.5 and cfg.stages.pose.resources.actors == 0
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['gpus'\]"):
        _cfg(**{"stages.parsing.resources": {"gpus": 1}})
    with pytest.raises(ConfigError, match="needs actors >= 1"):
        _cfg(**{"stages.parsing.resources": {"num_gpus": 1}})
    with pytest.raises(ConfigError, match="batch_size >= 1"):
        _cfg(**{"stages.parsing.resources": {"actors": 1, "batch_size": 0}})


def test_without_ray_the_error_says_how_to_install(raw, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    with pytest.raises(ConfigError, match=r"pip install 'vitonprep\[ray\]'"):
        build_dataset(_cfg(), raw, tmp_path / "out", BuildOptions(distributor="ray"))
    assert not (tmp_path / "out").exists()


class _BrokenSetup:
    """Work factory whose set-up fails in every worker process (as missing weights would)."""

    def __call__(self):
        raise FileNotFoundError("weights.pth is missing")


def test_work_that_cannot_be_set_up_stops_the_run_with_its_reason(ray_local, tmp_path):
    from vitonprep.distribute import RayOptions, run_shard_tasks_ray

    tasks = [ShardTask(i, tmp_path / "out", (i,)) for i in range(3)]
    with pytest.raises(ConfigError, match="shard workers could not start: FileNotFoundError: weights.pth"):
        run_shard_tasks_ray(tasks, _BrokenSetup(), RayOptions(workers=2))
    assert completed_shards(tmp_path / "out") == []


class _Blocking:
    """Work factory for the generic runner: every shard waits until it is cancelled (a stand-in for shards on
    nodes that are gone)."""

    def __call__(self):
        import time

        def work(task):
            while True:
                time.sleep(0.1)

        return work


def test_shards_no_live_node_can_run_are_returned_as_not_made(ray_local, tmp_path, monkeypatch):
    """The driver's side of a lost cluster, on one machine: once the cluster reports no CPU (as after its worker
    nodes died) for longer than the grace period, the run ends with every shard not made, instead of waiting."""
    from vitonprep.distribute import RayOptions, ray_runner, run_shard_tasks_ray

    real, calls = ray.cluster_resources, []

    def shrinking():  # the sizing at the start sees the real cluster; every later look finds no CPU
        calls.append(1)
        return real() if len(calls) == 1 else {**real(), "CPU": 0.0}

    monkeypatch.setattr(ray, "cluster_resources", shrinking)
    monkeypatch.setattr(ray_runner, "POLL_SECONDS", 0.1)
    tasks = [ShardTask(i, tmp_path / "out", (i,)) for i in range(3)]
    seen = []
    results = run_shard_tasks_ray(tasks, _Blocking(), RayOptions(workers=2, capacity_timeout_s=0.0),
                                  progress=lambda r, done, total: seen.append(r.index))
    assert [r.index for r in results] == [0, 1, 2] and sorted(seen) == [0, 1, 2]
    assert all(r.error.startswith("the live Ray nodes cannot run it (0 CPUs") for r in results), results
    assert completed_shards(tmp_path / "out") == []


def test_the_cluster_watch_waits_its_grace_period_before_giving_up():
    import socket

    from vitonprep.distribute.ray_runner import RayOptions, _Watch

    gcs = socket.create_server(("127.0.0.1", 0))  # stands in for the head's GCS port
    address = f"127.0.0.1:{gcs.getsockname()[1]}"

    class Cluster:
        cpus = 1.0

        def get_runtime_context(self):
            return type("Ctx", (), {"gcs_address": address})()

        def cluster_resources(self):
            return {"CPU": self.cpus}

    fake = Cluster()
    patient, hasty = RayOptions(head_timeout_s=3600, capacity_timeout_s=3600), RayOptions(head_timeout_s=0,
                                                                                         capacity_timeout_s=0)
    assert _Watch(fake, hasty, 0.0, 0.0).verdict() is None  # a live head and a CPU: keep waiting
    assert "cannot run it" in _Watch(fake, hasty, 1.0, 0.0).verdict()  # the one CPU is a stage actor's
    assert "0 of 1 GPUs for stage actors" in _Watch(fake, hasty, 0.0, 1.0).verdict()
    fake.cpus = 0.0
    assert _Watch(fake, patient, 0.0, 0.0).verdict() is None  # a node may still come back
    assert "cannot run it (0 CPUs" in _Watch(fake, hasty, 0.0, 0.0).verdict()
    gcs.close()
    assert _Watch(fake, patient, 0.0, 0.0).verdict() is None
    watch = _Watch(fake, hasty, 0.0, 0.0)
    assert watch.verdict().startswith("the Ray head node was lost") and watch.head_lost


# ------------------------------------------------------- issue 19: split over the workers, progress per sample

def test_cli_splits_a_small_build_over_the_clusters_workers(ray_local, raw, tmp_path):
    """Without -j the command line asks the cluster how many shard workers it holds before planning: 2 pairs on
    2 CPUs are 2 shards of 1, not one shard of up to 50 (the pipeline's samples_per_shard) on one worker."""
    out = tmp_path / "shards"
    result = CliRunner().invoke(app, ["build", str(raw), str(out), "--distributor", "ray", "--sheet", "0", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["workers"], summary["shards"], summary["samples_per_shard"]) == (2, 2, 1)
    assert json.loads((out / "_plan.json").read_text())["samples_per_shard"] == 1
    assert "2 Ray shard workers" in " ".join(result.stderr.split())
    assert ray.is_initialized()  # the command joined the running instance and left it running


def test_ray_shard_workers_report_every_sample_to_the_driver(ray_local, raw, tmp_path):
    """A work carrying a tick callable (the build's per-sample counter) gets it called in the driver for every
    sample, through the tick sink the shard workers report to."""
    cfg = _cfg(samples_per_shard=2)
    ticks: list[tuple[int, int]] = []
    ledger = ShardLedger([ShardTask(0, tmp_path / "out", plan_raw(raw).items)])
    (tmp_path / "out").mkdir()
    work = BuildWork(cfg, ticks=lambda index, done: ticks.append((index, done)))
    RayBuildDistributor(cfg, RayOptions(workers=1)).run(ledger, work)
    assert [r.nsamples for r in ledger.ordered()] == [len(PERSONS)]
    assert ticks == [(0, n) for n in range(1, len(PERSONS) + 1)]


def test_build_dataset_on_ray_reports_progress_per_sample(ray_local, raw, tmp_path):
    """The library's per-sample callback fires for every sample on Ray too, not once per shard."""
    seen: list[tuple[int, int, int]] = []
    build_dataset(_cfg(samples_per_shard=2), raw, tmp_path / "out", BuildOptions(distributor="ray", workers=1),
                  sample_progress=lambda done, planned, made: seen.append((done, planned, made)))
    # the shard's result repeats its last tick's count; before, Ray builds sent only that one per shard
    distinct = [t for i, t in enumerate(seen) if i == 0 or t != seen[i - 1]]
    assert distinct == [(n, len(PERSONS), n) for n in range(1, len(PERSONS) + 1)]


def test_a_sink_that_does_not_answer_costs_one_timeout_per_shard_not_one_per_sample(monkeypatch):
    class _Remote:
        def __init__(self):
            self.calls = 0

        def remote(self, *args):
            self.calls += 1
            return args

    class _Ray:
        def get(self, ref, timeout):
            raise TimeoutError(f"no answer in {timeout} s")

    sink = type("Sink", (), {"put": _Remote()})()
    monkeypatch.setattr(ray_build_module, "import_ray", lambda: _Ray())
    ticks = ray_build_module._SinkTicks(sink)
    with pytest.raises(TimeoutError):  # the first loss is reported (ShardMaker logs it; the shard goes on)
        ticks(0, 1)
    for done in range(2, 6):
        ticks(0, done)  # then the shard stops asking a sink that does not answer
    assert sink.put.calls == 1
