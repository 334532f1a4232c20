"""Workers and shards that fit the input (issue 19): the CLI's default worker count follows the cores this process
may use; a small build is cut into one shard per worker, the size recorded in the plan so that a resume with
another ``-j`` stays exact; progress comes per sample, and a resumed build's rate counts only its own work."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers.shards import samples_by_key
from typer.testing import CliRunner

import vitonprep.build as build_mod
import vitonprep.cli.build as build_cli
from vitonprep.build import BuildOptions, build_dataset, default_workers, shard_size
from vitonprep.cli import app
from vitonprep.config import load_pipeline_config
from vitonprep.errors import ConfigError

from conftest import raw_from_bundled_pairs

PERSONS = ("00034_00.jpg", "00035_00.jpg", "00055_00.jpg")


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    return raw_from_bundled_pairs(tmp_path_factory.mktemp("bw") / "raw", PERSONS)


@pytest.mark.parametrize("nitems, per_shard, workers, size", [
    (12, 50, 2, 6), (13, 50, 2, 7), (3, 50, 2, 2), (1, 50, 4, 1), (200, 50, 2, 50), (12, 50, 1, 50), (0, 50, 2, 50),
    (12, 4, 2, 4),
])
def test_shard_size_gives_every_worker_a_shard_when_the_input_is_small(nitems, per_shard, workers, size):
    assert shard_size(nitems, per_shard, workers) == size


def test_default_workers_are_the_usable_cores_capped_by_memory(monkeypatch):
    gib_pages = (1 << 30) // os.sysconf("SC_PAGE_SIZE")
    monkeypatch.delattr(os, "process_cpu_count", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(6)))  # e.g. taskset -c 0-5 on a big host
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    pages = {"SC_PAGE_SIZE": os.sysconf("SC_PAGE_SIZE"), "SC_PHYS_PAGES": 24 * gib_pages}
    monkeypatch.setattr(os, "sysconf", lambda name: pages[name])
    assert default_workers() == 6
    pages["SC_PHYS_PAGES"] = 4 * gib_pages  # 4 GiB: four workers at their peak
    assert default_workers() == 4
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3})
    assert default_workers() == 1


def test_a_small_build_spreads_over_the_workers_and_resumes_exactly_with_another_j(raw, tmp_path):
    cfg = load_pipeline_config("default")  # 50 samples per shard: 3 pairs would be a single shard
    seen = []
    first = build_dataset(cfg, raw, tmp_path / "out", BuildOptions(workers=2),
                          sample_progress=lambda *a: seen.append(a))
    assert (first.nshards, first.samples_per_shard, first.nmade) == (2, 2, 3)
    plan = json.loads((tmp_path / "out/_plan.json").read_text())
    assert plan["samples_per_shard"] == 2
    # per sample, from both worker processes: never backwards, ending at every planned sample made by this run
    assert [a[0] for a in seen] == sorted(a[0] for a in seen) and seen[-1] == (3, 3, 3)
    assert len({a[0] for a in seen}) == 3
    # the same command with -j 1 keeps the recorded size: nothing to redo, and no work of this run to rate
    again_seen = []
    again = build_dataset(cfg, raw, tmp_path / "out", BuildOptions(workers=1),
                          sample_progress=lambda *a: again_seen.append(a))
    assert (again.skipped_shards, again.nmade, again.nsamples) == (2, 0, 3)
    assert again_seen[-1] == (3, 3, 0)
    # and the shards equal a one-process build cut the same way
    ref = build_dataset(load_pipeline_config("default", {"samples_per_shard": 2}), raw, tmp_path / "ref")
    assert ref.nshards == 2
    for name in ("00000.tar", "00001.tar"):
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "ref" / name).read_bytes()
    # another pipeline is still another build, whatever the recorded size
    with pytest.raises(ConfigError, match="different build"):
        build_dataset(load_pipeline_config("default", {"category": "dresses"}), raw, tmp_path / "out")


def test_one_worker_reports_progress_per_sample_in_process(raw, tmp_path):
    seen = []
    build_dataset(load_pipeline_config("default"), raw, tmp_path / "out", sample_progress=lambda *a: seen.append(a))
    assert [a[0] for a in seen] == [1, 2, 3, 3] and all(a[1] == 3 for a in seen)


def test_the_cli_uses_the_default_workers_and_says_how_the_build_was_cut(raw, tmp_path, monkeypatch):
    monkeypatch.setattr(build_cli, "default_workers", lambda: 2)  # what a 2-core machine gets without -j
    res = CliRunner().invoke(app, ["build", str(raw), str(tmp_path / "out"), "--sheet", "0"])
    assert res.exit_code == 0, res.output
    assert "2 shards of up to 2 samples, 2 worker processes" in " ".join(res.output.split())
    assert len(samples_by_key(tmp_path / "out")) == len(PERSONS)


def test_a_lost_progress_tick_does_not_fail_the_shard(raw, tmp_path, monkeypatch):
    """Progress is a courtesy: every per-sample tick raising (a queue whose manager is gone) leaves the build whole
    (before, each attempt of the shard failed on its first tick and the shard was listed as failed)."""
    def lost(self, index, done):
        raise BrokenPipeError("progress queue gone")

    monkeypatch.setattr(build_mod._SampleCounter, "tick", lost)
    cfg = load_pipeline_config("default", {"samples_per_shard": 50})
    report = build_dataset(cfg, raw, tmp_path / "o", BuildOptions(workers=1, max_shard_retry=0),
                           sample_progress=lambda done, total, this_run: None)
    assert not report.failed_shards and not report.failures
    assert report.nsamples == len(samples_by_key(tmp_path / "o")) == report.nplanned
