"""validate exits 0 on sound shards and names the sample for each kind of damage (made here)."""

import io
import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from vitonprep.cli import app
from vitonprep.shards import Sample, iter_tar_samples, list_shards, write_manifest, write_shard
from vitonprep.validate import validate_shards

runner = CliRunner()


def _rewrite(src, dst, change):
    """Copy the dataset, applying ``change(sample)`` to the first sample, with fresh stats and manifest so the
    damage is in the content, not in a checksum."""
    samples = [s for tar in list_shards(src) for s in iter_tar_samples(tar)]
    change(samples[0])
    write_shard(dst, 0, samples)
    write_manifest(dst, "t", {})
    return samples[0].key


def _png(arr, mode="L"):
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, format="PNG")
    return buf.getvalue()


def _drop_member(s):
    del s.members["agn_mask.png"]


def _size_mismatch(s):
    s.members["cloth_mask.png"] = _png(np.full((512, 384), 255, np.uint8))


def _non_binary(s):
    m = np.zeros((1024, 768), np.uint8)
    m[100:600, 100:600] = 200
    s.members["gt_cloth_warped_mask.png"] = _png(m)


def _bad_label(s):
    lab = np.zeros((1024, 768), np.uint8)
    lab[10, 10] = 42
    img = Image.fromarray(lab, "P")
    img.putpalette(list(range(256)) * 3)  # a full palette, or PIL compacts the indices on save
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    s.members["parse.png"] = buf.getvalue()


def _empty_cloth(s):
    s.members["cloth_mask.png"] = _png(np.zeros((1024, 768), np.uint8))


def _nan_wrist(s):
    pose = json.loads(s.members["pose.json"])
    kp = pose["people"][0]["pose_keypoints_2d"]
    kp[3 * 4], kp[3 * 4 + 1], kp[3 * 4 + 2] = float("nan"), float("nan"), 0.9  # RWrist: detected, nowhere
    s.members["pose.json"] = json.dumps(pose).encode()


@pytest.mark.parametrize("change, check, words", [
    (_drop_member, "missing", "agn_mask.png"),
    (_size_mismatch, "size", "cloth_mask.png is 384x512"),
    (_non_binary, "binary_mask", "not binary"),
    (_bad_label, "label_range", "[42]"),
    (_empty_cloth, "mask_area", "cloth_mask is empty"),
    (_nan_wrist, "keypoints", "pose keypoints [4] have non-finite coordinates"),
])
def test_each_damage_is_reported_with_the_sample(vitonhd_shards, tmp_path, change, check, words):
    key = _rewrite(vitonhd_shards, tmp_path / "bad", change)
    report = validate_shards(tmp_path / "bad")
    assert not report.ok
    hits = [i for i in report.errors if i.check == check and i.key == key]
    assert hits and words in hits[0].message, report.errors
    result = runner.invoke(app, ["validate", str(tmp_path / "bad")])
    assert result.exit_code == 1
    assert key in result.output


def test_truncated_tar(vitonhd_shards, tmp_path):
    import shutil

    bad = tmp_path / "trunc"
    shutil.copytree(vitonhd_shards, bad)
    tar = list_shards(bad)[0]
    data = tar.read_bytes()
    tar.write_bytes(data[: len(data) // 2])
    report = validate_shards(bad)
    checks = {i.check for i in report.errors}
    assert "tar" in checks and "checksum" in checks
    msg = next(i.message for i in report.errors if i.check == "tar")
    assert tar.name in msg and "truncated" in msg
    assert runner.invoke(app, ["validate", str(bad)]).exit_code == 1
    assert runner.invoke(app, ["validate", str(bad), "-j", "2"]).exit_code == 1


def test_duplicate_key_across_shards(vitonhd_shards, tmp_path):
    samples = [s for tar in list_shards(vitonhd_shards) for s in iter_tar_samples(tar)]
    out = tmp_path / "dup"
    write_shard(out, 0, samples)
    write_shard(out, 1, [Sample(samples[0].key, dict(samples[0].members))])
    write_manifest(out, "t", {})
    report = validate_shards(out)
    assert any(i.check == "duplicate" and i.key == samples[0].key for i in report.errors)


def test_small_cloth_mask_is_a_warning_not_an_error(vitonhd_shards, tmp_path):
    def small(s):
        m = np.zeros((1024, 768), np.uint8)
        m[400:600, 300:500] = 255  # 40,000 px < 122,880
        s.members["cloth_mask.png"] = _png(m)

    key = _rewrite(vitonhd_shards, tmp_path / "small", small)
    report = validate_shards(tmp_path / "small")
    assert report.ok
    assert any(i.key == key and "122880" in i.message for i in report.warnings)


def test_good_shards_exit_zero_and_write_report(vitonhd_shards, tmp_path):
    out = tmp_path / "report.json"
    result = runner.invoke(app, ["validate", str(vitonhd_shards), "--report", str(out)])
    assert result.exit_code == 0, result.output
    rep = json.loads(out.read_text())
    assert rep["ok"] and rep["nsamples"] == 3 and rep["nerrors"] == 0


def test_report_does_not_depend_on_workers(tmp_path, vitonhd_shards):
    # a damaged copy: one shard with a duplicate key of another, so cross-shard checks are exercised too
    import shutil

    from vitonprep.shards import list_shards, shard_name

    bad = tmp_path / "bad"
    shutil.copytree(vitonhd_shards, bad)
    tars = list_shards(bad)
    assert len(tars) == 2
    shutil.copy(tars[0], bad / shard_name(9))
    one, two = validate_shards(bad, workers=1), validate_shards(bad, workers=2)
    assert one.to_dict() == two.to_dict()
    assert any(i.check == "duplicate" for i in two.errors)
