"""Issue 15 item 10: on a multi-node Ray cluster simulated on this machine (`ray.cluster_utils.Cluster`, one raylet
per node), losing a node mid-build never hangs `vitonprep build --distributor ray`.

Each case starts its own cluster, runs the real CLI in a child process (so a hang is a timeout that fails the test
instead of blocking the suite), waits until a shard is running on the node to be killed, kills that node's
processes, and asserts the outcome: every sample byte-identical to the local build, or exit 1 with every shard not
made listed. Shards are one person each; the raylets of doomed nodes carry HOLD_ENV, which makes their shard work
wait (after leaving a marker) until the node is killed, so the kill always lands mid-task.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.shards import samples_by_key

from vitonprep.build import build_dataset
from vitonprep.build_worker import BuildWork
from vitonprep.config import load_pipeline_config
from vitonprep.shards import completed_shards

from conftest import raw_from_bundled_pairs

ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'vitonprep[ray]'")
from ray.cluster_utils import Cluster  # noqa: E402

pytestmark = pytest.mark.slow  # each case starts a Ray cluster and runs the real pipeline: 1-2 minutes

HOLD_ENV = "VITONPREP_TEST_HOLD_DIR"
PERSONS = ("00034_00.jpg", "00035_00.jpg", "00055_00.jpg", "00121_00.jpg")  # 4 shards: one more than 3 CPUs
BUILD_TIMEOUT = 300  # seconds; the builds below take about a minute: past this the build is hung
TESTS = Path(__file__).resolve().parent
# the child process swaps in the holding factory, then runs the CLI exactly as a user would
DRIVER = ("import sys\nimport test_ray_lost_node as t\nimport vitonprep.build\n"
          "vitonprep.build.BuildWork = t._HoldOnDoomedNode\nfrom vitonprep.cli import app\n"
          "app(sys.argv[1:], prog_name='vitonprep')\n")
# notices a dead node in ~3 s instead of Ray's default ~15-30 s: speed only, the outcome is the same
FAST_HEALTH_CHECK = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 1000,
                     "health_check_failure_threshold": 3}


class _HoldOnDoomedNode(BuildWork):
    """The build's own shard work, except in a process of a doomed node: there a shard leaves a marker and waits
    for the node to be killed."""

    def __call__(self):
        hold = os.environ.get(HOLD_ENV)
        if not hold:
            return super().__call__()

        def held(task):
            Path(hold, f"started_{task.index}_{os.getpid()}").touch()
            while True:
                time.sleep(1)

        return held



@pytest.fixture(scope="module")
def raw(tmp_path_factory, data_dir) -> Path:
    return raw_from_bundled_pairs(tmp_path_factory.mktemp("raw") / "raw", PERSONS)


@pytest.fixture(scope="module")
def local_build(raw, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "shards"
    report = build_dataset(load_pipeline_config("default", {"samples_per_shard": 1}), raw, out)
    assert report.nsamples == len(PERSONS), report.failures
    return out


class _Cluster:
    """A Ray cluster of separate raylets on this machine; this test process only starts and kills nodes (it never
    connects), so no Ray state leaks into other tests."""

    def __init__(self, hold_dir: Path):
        self.hold_dir = hold_dir
        self.cluster: Cluster | None = None
        self.path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH", "")) if p)

    def start(self, head_cpus: int, workers: list[bool]) -> list:
        """A head with ``head_cpus`` CPUs and one 1-CPU node per entry of ``workers`` (True: a doomed node)."""
        self.cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": head_cpus, "include_dashboard": False, "_system_config": FAST_HEALTH_CHECK,
            "env_vars": {"PYTHONPATH": self.path}})
        nodes = [self.cluster.add_node(num_cpus=1, env_vars={"PYTHONPATH": self.path,
                                                             **({HOLD_ENV: str(self.hold_dir)} if doomed else {})})
                 for doomed in workers]
        self.cluster.wait_for_nodes()
        return nodes

    def shutdown(self) -> None:
        if self.cluster is not None:
            self.cluster.shutdown()


@pytest.fixture
def cluster(tmp_path):
    hold = tmp_path / "hold"
    hold.mkdir()
    c = _Cluster(hold)
    yield c
    c.shutdown()


def _build(cluster: _Cluster, raw: Path, out: Path, kill) -> subprocess.CompletedProcess:
    """The CLI build in a child process; ``kill()`` runs once a shard is running on a doomed node."""
    env = {**os.environ, "PYTHONPATH": cluster.path}
    cmd = [sys.executable, "-c", DRIVER, "build", str(raw), str(out), "--distributor", "ray", "--ray-address",
           cluster.cluster.address, "--samples-per-shard", "1", "--sheet", "0"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + BUILD_TIMEOUT
        while not list(cluster.hold_dir.iterdir()):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"no shard ever ran on the doomed node:\n{proc.communicate()[0]}")
            time.sleep(0.2)
        kill()
        try:
            output, _ = proc.communicate(timeout=max(deadline - time.monotonic(), 60))
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail(f"the build hung after the node was lost:\n{proc.communicate()[0][-4000:]}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(cmd, proc.returncode, output)


def test_a_lost_worker_node_with_the_workers_filling_the_cluster_does_not_hang_the_build(cluster, raw,
                                                                                           local_build, tmp_path):
    # 3 CPUs, default -j: one shard worker per CPU, a fourth shard queued; the node holding a shard is killed
    _, doomed = cluster.start(head_cpus=1, workers=[False, True])
    out = tmp_path / "out"
    done = _build(cluster, raw, out, kill=lambda: cluster.cluster.remove_node(doomed, allow_graceful=False))
    assert done.returncode == 0, done.stdout[-4000:]
    # the progress line counts failures ("0 failures"); validate counts the samples it read
    assert " 0 failures" in done.stdout and "was not made" not in done.stdout
    assert f"validate: {len(PERSONS)} samples, 0 errors" in done.stdout
    assert "sound" in done.stdout
    local, dist = samples_by_key(local_build), samples_by_key(out)
    assert sorted(dist) == sorted(local)
    assert {(k, m) for k in local for m in local[k] if dist[k].get(m) != local[k][m]} == set()
    assert completed_shards(out) == list(range(len(PERSONS)))
    assert not list(out.glob("*.partial")) and sorted(p.name for p in tmp_path.iterdir()) == ["hold", "out"]


def test_when_no_node_can_take_the_work_the_build_stops_with_the_shards_not_made(cluster, raw, tmp_path):
    # a head without CPUs and two 1-CPU nodes, both holding a shard: once both are killed nothing can run a shard
    doomed = cluster.start(head_cpus=0, workers=[True, True])

    def kill_both():
        while len(list(cluster.hold_dir.iterdir())) < 2:  # both shard workers are mid-task
            time.sleep(0.2)
        for node in doomed:
            cluster.cluster.remove_node(node, allow_graceful=False)

    out = tmp_path / "out"
    done = _build(cluster, raw, out, kill=kill_both)
    assert done.returncode == 1, done.stdout[-4000:]
    said = " ".join(done.stdout.split())  # the console wraps long lines
    for index in range(len(PERSONS)):
        assert f"shard {index} was not made" in said, done.stdout[-4000:]
    assert "the live Ray nodes cannot run it (0 CPUs for shard workers" in said
    assert "no usable sample was made" in said
    assert completed_shards(out) == [] and not list(out.glob("*.tar"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hold", "out"]


def test_a_lost_head_ends_the_build_with_the_shards_not_made_and_a_rerun_completes(cluster, raw, local_build,
                                                                                   tmp_path):
    # the head runs shards until it is killed while the other node holds one; then the cluster is gone
    cluster.start(head_cpus=1, workers=[True])
    out = tmp_path / "out"
    done = _build(cluster, raw, out, kill=lambda: cluster.cluster.remove_node(cluster.cluster.head_node,
                                                                            allow_graceful=False))
    assert done.returncode == 1, done.stdout[-4000:]
    made = completed_shards(out)
    missing = [i for i in range(len(PERSONS)) if i not in made]
    assert missing, "the held shard cannot have been made"
    said = " ".join(done.stdout.split())
    for index in missing:
        assert f"shard {index} was not made" in said, done.stdout[-4000:]
    assert "the Ray head node was lost" in said
    # the partial output is consistent: a local rerun makes only the missing shards, byte-identical
    report = build_dataset(load_pipeline_config("default", {"samples_per_shard": 1}), raw, out)
    assert report.skipped_shards == len(made) and not report.failed_shards
    assert samples_by_key(out) == samples_by_key(local_build)
