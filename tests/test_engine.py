"""The shard-job engine (`vitonprep.engine`) and the build's worker on it: one plan check, ledger and retry budget
for every distributor; a worker killed mid-task loses and duplicates no sample; batched and offloaded stage calls
give the samples the per-sample path gives, byte for byte; a rebuild from shards runs the same pipeline."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
from helpers.faults import arm_exit_once
from helpers.shards import samples_by_key
from PIL import Image

from vitonprep.build import BuildOptions, build_dataset
from vitonprep.build_worker import Offload, ShardMaker
from vitonprep.config import load_pipeline_config
from vitonprep.distribute.ray_build import StageActor
from vitonprep.engine import Ready, ShardJob, ShardLedger, ShardTask, chunk, run_job
from vitonprep.errors import ConfigError, SampleError
from vitonprep.raw import plan_raw
from vitonprep.rebuild import plan_shards
from vitonprep.runner import LocalDistributor
from vitonprep.shards import Sample, completed_shards, iter_tar_samples, list_shards, write_shard
from vitonprep.stages import Pipeline, SampleContext

from conftest import raw_from_bundled_pairs

PERSONS = ("00034_00.jpg", "00035_00.jpg", "00055_00.jpg")



@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    """Three bundled pairs and a photo of a blank wall (its pose fails: a SampleError on every path)."""
    root = raw_from_bundled_pairs(tmp_path_factory.mktemp("raw") / "raw", PERSONS)
    Image.new("RGB", (768, 1024), (230, 230, 230)).save(root / "person" / "wall.jpg")
    cloth = sorted((root / "cloth").iterdir())[0].name
    (root / "pairs.txt").write_text((root / "pairs.txt").read_text() + f"wall.jpg {cloth}\n")
    return root


@pytest.fixture(scope="module")
def reference(raw, tmp_path_factory) -> Path:
    """The plain build: one process, one sample at a time (`Pipeline.run`)."""
    out = tmp_path_factory.mktemp("ref") / "shards"
    report = build_dataset(load_pipeline_config("default", {"samples_per_shard": 2}), raw, out)
    assert report.nsamples == len(PERSONS) and [f.stage for f in report.failures] == ["pose"]
    return out


# ---------------------------------------------------------------- the engine itself

def _write_ints(task: ShardTask):
    return write_shard(task.out_dir, task.index, [Sample(f"s{i}", {"meta.json": b"{}"}) for i in task.items])


def test_a_job_resumes_only_into_the_same_plan(tmp_path):
    tasks = tuple(ShardTask(i, tmp_path, items) for i, items in enumerate(chunk(list(range(5)), 2)))

    def job(plan):
        return ShardJob(out=tmp_path, name="t", tasks=tasks, plan=plan, work=Ready(_write_ints),
                        manifest_info=lambda results: {"made": [r.index for r in results if not r.skipped]})

    assert [r.nsamples for r in run_job(job({"items": [0, 1]}), LocalDistributor())] == [2, 2, 1]
    seen = []
    again = run_job(job({"items": (0, 1)}), LocalDistributor(), lambda r, done, total: seen.append((done, total)))
    assert all(r.skipped for r in again) and seen == [(3, 3)] * 3  # a tuple reads back as the list
    assert json.loads((tmp_path / "manifest.json").read_text())["vitonprep"]["made"] == []
    with pytest.raises(ConfigError, match="different plan"):
        run_job(job({"items": [0, 2]}), LocalDistributor())


def test_work_that_cannot_be_set_up_stops_the_local_run(tmp_path):
    def broken():
        raise FileNotFoundError("weights.pth is missing")

    ledger = ShardLedger([ShardTask(i, tmp_path, (i,)) for i in range(2)])
    with pytest.raises(ConfigError, match="shard workers could not start: FileNotFoundError: weights.pth"):
        LocalDistributor().run(ledger, broken)
    assert completed_shards(tmp_path) == []


def _wrong_setup():
    raise ConfigError("stages.caption: no tag file at tags.csv")


def test_a_config_error_in_a_pool_workers_set_up_stops_the_run_as_it_is(tmp_path):
    ledger = ShardLedger([ShardTask(i, tmp_path, (i,)) for i in range(2)])
    with pytest.raises(ConfigError, match=r"^stages.caption: no tag file"):
        LocalDistributor(workers=2).run(ledger, _wrong_setup)
    assert completed_shards(tmp_path) == []


@pytest.mark.slow  # two builds of three photos with two forked workers: ~40 s on 2 cores
def test_a_worker_killed_mid_task_loses_and_duplicates_nothing(raw, reference, tmp_path, monkeypatch):
    fault = tmp_path / "exit-once"
    arm_exit_once(monkeypatch, fault)  # the first shard task to delete it dies with os._exit before writing
    cfg = load_pipeline_config("default", {"samples_per_shard": 1})
    report = build_dataset(cfg, raw, tmp_path / "out", BuildOptions(workers=2, max_shard_retry=1))
    assert not fault.exists(), "the fault did not fire"
    assert report.failed_shards == {} and report.nsamples == len(PERSONS)
    assert samples_by_key(tmp_path / "out") == samples_by_key(reference)  # every sample once, byte for byte
    assert not list((tmp_path / "out").glob("*.partial"))


# ---------------------------------------------------------------- batched and offloaded stages

class _InProcessActor:
    """A `RemoteStage` that does what a Ray stage actor does, in this process: the contexts and the results cross
    a pickle round trip, and the stage runs once per call on the whole batch (`StageActor.run`)."""

    def __init__(self, actor: StageActor):
        self.actor, self.batches = actor, []

    def __call__(self, n, ctxs):
        self.batches.append(len(ctxs))
        return pickle.loads(pickle.dumps(self.actor.run(pickle.loads(pickle.dumps(ctxs)))))


def _actor(cfg, name: str) -> StageActor:
    actor = StageActor.__new__(StageActor)  # its __init__ sets this process's threads up for Ray; not here
    actor.stage = next(s for s in Pipeline.from_config(cfg).stages if s.name == name)
    actor.stage.setup()
    return actor


def test_batched_and_offloaded_stages_give_the_per_sample_shards(raw, reference, tmp_path):
    cfg = load_pipeline_config("default", {"samples_per_shard": 2})
    tasks = [ShardTask(i, tmp_path / "out", items) for i, items in enumerate(chunk(plan_raw(raw).items, 2))]
    pose, parsing = _InProcessActor(_actor(cfg, "pose")), _InProcessActor(_actor(cfg, "parsing"))
    maker = ShardMaker(cfg, {"pose": Offload(pose, 2), "parsing": Offload(parsing, 2)})
    results = [maker(t) for t in tasks]
    assert pose.batches == [2, 2] and parsing.batches == [2, 1]  # the wall failed at pose: 1 sample goes on
    assert [(f.stage, Path(f.source).name) for r in results for f in r.failures] == [("pose", "wall.jpg")]
    assert samples_by_key(tmp_path / "out") == samples_by_key(reference)
    for name in ("00000.tar", "00001.tar"):  # the whole shard, failures and member order included
        assert (tmp_path / "out" / name).read_bytes() == (reference / name).read_bytes()


def test_a_stage_actor_ships_sample_errors_as_they_are(raw):
    cfg = load_pipeline_config("default")
    actor = _actor(cfg, "pose")
    pipe = Pipeline.from_config(cfg)
    ctxs = [SampleContext(item) for item in plan_raw(raw).items[-2:]]  # the last bundled pair and the wall
    for ctx in ctxs:
        pipe.stages[0](ctx)  # load
    outs, secs = pickle.loads(pickle.dumps(actor.run(ctxs)))
    assert secs["pose"] > 0
    assert outs[0].pose is not None and isinstance(outs[1], SampleError)
    assert outs[1].stage == "pose" and "no person" in outs[1].reason and outs[1].source.endswith("wall.jpg")


# ---------------------------------------------------------------- rebuild from shards

def test_rebuild_from_shards_runs_the_same_pipeline_on_the_stored_photos(reference, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(reference, src)
    cfg = load_pipeline_config("default", {"samples_per_shard": 2})
    assert [[i.key for i in items] for _, items in plan_shards(src)] == [
        sorted(s.key for s in iter_tar_samples(tar)) for tar in list_shards(src)]
    report = build_dataset(cfg, src, tmp_path / "again")
    assert report.nsamples == len(PERSONS) and not report.failures and report.nshards == 2
    old, new = samples_by_key(src), samples_by_key(tmp_path / "again")
    assert sorted(new) == sorted(old)
    shard_of = {s.key: tar.name for tar in list_shards(src) for s in iter_tar_samples(tar)}
    for key in old:
        # the stored photos are kept, the maps remade from them equal the ones made from the files
        assert {m: d for m, d in new[key].items() if m != "meta.json"} == \
               {m: d for m, d in old[key].items() if m != "meta.json"}
        meta, old_meta = json.loads(new[key]["meta.json"]), json.loads(old[key]["meta.json"])
        assert meta["rebuilt_from"] == {"dataset": str(src), "shard": shard_of[key]}
        assert {k: v for k, v in meta.items() if k != "rebuilt_from"} == old_meta


def _rewrite_member(tar_path: Path, member: str, data: bytes) -> None:
    """``tar_path`` with one member's bytes replaced (order and other members kept)."""
    import io
    import tarfile

    with tarfile.open(tar_path) as tar:
        entries = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers() if m.isfile()]
    with tarfile.open(tar_path, "w") as tar:
        for name, payload in entries:
            payload = data if name == member else payload
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))


@pytest.mark.parametrize("bad_meta", [b"{not json", b"[1, 2]", b'{"producers": 7}'])
def test_rebuild_records_a_broken_input_meta_for_its_sample_only(reference, tmp_path, bad_meta):
    src = tmp_path / "src"
    shutil.copytree(reference, src)
    tar = list_shards(src)[0]
    victim = next(iter_tar_samples(tar)).key
    _rewrite_member(tar, f"{victim}.meta.json", bad_meta)
    report = build_dataset(load_pipeline_config("default", {"samples_per_shard": 2}), src, tmp_path / "again")
    assert not report.failed_shards and report.nsamples == len(PERSONS) - 1
    assert [(f.key, f.stage) for f in report.failures] == [(victim, "load_person")]
    assert "meta.json" in report.failures[0].reason


def test_rebuild_refuses_a_stored_photo_of_another_size_for_its_sample_only(reference, tmp_path):
    """A rebuild keeps the stored photo bytes, so a photo that is not the canvas (a foreign or crafted shard) would
    sit beside maps of another size: that sample is refused with the size, the others are rebuilt."""
    import io

    src = tmp_path / "src"
    shutil.copytree(reference, src)
    tar = list_shards(src)[0]
    victim = next(iter_tar_samples(tar))
    small = io.BytesIO()
    Image.open(io.BytesIO(victim.members["image.jpg"])).resize((384, 512)).save(small, "JPEG", quality=95)
    _rewrite_member(tar, f"{victim.key}.image.jpg", small.getvalue())
    report = build_dataset(load_pipeline_config("default", {"samples_per_shard": 2}), src, tmp_path / "again")
    assert not report.failed_shards and report.nsamples == len(PERSONS) - 1
    assert [(f.key, f.stage) for f in report.failures] == [(victim.key, "load_person")]
    assert "stored photo is 384x512" in report.failures[0].reason and "768x1024" in report.failures[0].reason
