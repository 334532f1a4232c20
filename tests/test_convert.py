"""convert -> validate -> export -> convert on the bundled VITON-HD samples (and a DressCode tree made from them)."""

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vitonprep import codecs
from vitonprep.convert import ConvertConfig, convert_dataset
from vitonprep.errors import ConfigError
from vitonprep.export import export_vitonhd
from vitonprep.shards import iter_tar_samples, list_shards, read_manifest
from vitonprep.validate import validate_shards


def _samples(shard_dir):
    return {s.key: s for tar in list_shards(shard_dir) for s in iter_tar_samples(tar)}


def _meta(sample):
    return json.loads(sample.members["meta.json"])


def test_convert_official_2021_sample(vitonhd_shards, data_dir):
    samples = _samples(vitonhd_shards)
    assert sorted(samples) == ["00891_00__01430_00", "03615_00__02783_00", "07445_00__06429_00"]
    s = samples["00891_00__01430_00"]
    meta = _meta(s)
    assert meta["pair"] == "unpaired" and meta["split"] == "test" and meta["category"] == "upper_body"
    # shipped files pass through unchanged; missing maps are derived and labelled
    assert s.members["image.jpg"] == (data_dir / "vitonhd-official/image/00891_00.jpg").read_bytes()
    assert s.members["cloth.jpg"] == (data_dir / "vitonhd-official/cloth/01430_00.jpg").read_bytes()
    official = np.asarray(Image.open(data_dir / "vitonhd-official/image-parse/00891_00.png"))
    np.testing.assert_array_equal(codecs.decode_labels(s.members["parse.png"]), official)
    assert Image.open(io.BytesIO(s.members["parse.png"])).getpalette()[:60] == \
        Image.open(data_dir / "vitonhd-official/image-parse/00891_00.png").getpalette()[:60]
    prod = meta["producers"]
    assert prod["image_densepose"]["approximate"] is True
    assert prod["agn"]["backend"] == "vitonprep-hrviton-agnostic" and prod["agn"]["approximate"] is False
    assert prod["image"]["backend"] == "vitonhd-dataset"
    pose = json.loads(s.members["pose.json"])
    p = pose["people"][0]
    assert [len(p[k]) for k in ("pose_keypoints_2d", "face_keypoints_2d", "hand_left_keypoints_2d",
                                "hand_right_keypoints_2d")] == [75, 210, 63, 63]
    manifest = read_manifest(vitonhd_shards)
    assert manifest["vitonprep"]["pairs"]["test_unpaired"] == [
        "00891_00.jpg 01430_00.jpg", "03615_00.jpg 02783_00.jpg", "07445_00.jpg 06429_00.jpg"]
    report = validate_shards(vitonhd_shards)
    assert report.ok, [i.message for i in report.errors]


def test_convert_v3_reference_passes_official_maps_through(v3_root, tmp_path):
    out = tmp_path / "s"
    rep = convert_dataset(ConvertConfig("vitonhd", v3_root, out))
    assert rep.nsamples == 1 and not rep.failures
    s = _samples(out)["00006_00"]
    src = v3_root / "train"
    assert s.members["agn.jpg"] == (src / "agnostic-v3.2/00006_00.jpg").read_bytes()
    assert s.members["image_densepose.jpg"] == (src / "image-densepose/00006_00.jpg").read_bytes()
    official_pa = np.asarray(Image.open(src / "image-parse-agnostic-v3.2/00006_00.png"))
    np.testing.assert_array_equal(codecs.decode_labels(s.members["parse_agn.png"]), official_pa)
    meta = _meta(s)
    assert meta["pair"] == "paired" and meta["split"] == "train"
    assert meta["producers"]["agn_mask"]["backend"] == "vitonprep-hrviton-agnostic"
    assert validate_shards(out).ok


def test_unofficial_v3_json_is_flagged(v3_root, tmp_path):
    """The hand-written JSON shipped with 00006_00 puts a knee at y=1048 of 1024: validate must say so."""
    root = tmp_path / "v3"
    shutil.copytree(v3_root, root)
    shutil.copy(Path(__file__).parents[1] / "data/vitonhd-v3-reference/openpose_json/00006_00_keypoints.json",
                root / "train/openpose_json/00006_00_keypoints.json")
    convert_dataset(ConvertConfig("vitonhd", root, tmp_path / "s"))
    report = validate_shards(tmp_path / "s")
    assert not report.ok
    assert any(i.check == "keypoints" and "[13, 14]" in i.message and i.key == "00006_00" for i in report.errors)


def test_round_trip_convert_export_convert(vitonhd_shards, tmp_path):
    exported = tmp_path / "exported"
    rep = export_vitonhd(vitonhd_shards, exported)
    assert rep.nsamples == 3
    t = exported / "test"
    for folder, name in [("image", "00891_00.jpg"), ("cloth-mask", "01430_00.jpg"),
                         ("image-parse-v3", "00891_00.png"), ("image-parse-agnostic-v3.2", "00891_00.png"),
                         ("openpose_json", "00891_00_keypoints.json"), ("openpose_img", "00891_00_rendered.png"),
                         ("image-densepose", "00891_00.jpg"), ("agnostic-v3.2", "00891_00.jpg"),
                         ("agnostic-mask", "00891_00_mask.png"), ("gt_cloth_warped_mask", "00891_00.jpg")]:
        assert (t / folder / name).is_file(), f"{folder}/{name}"
    assert Image.open(t / "cloth-mask/01430_00.jpg").mode == "L"
    assert Image.open(t / "image-parse-v3/00891_00.png").mode == "P"
    assert (exported / "test_pairs.txt").read_text().splitlines() == [
        "00891_00.jpg 01430_00.jpg", "03615_00.jpg 02783_00.jpg", "07445_00.jpg 06429_00.jpg"]

    again = tmp_path / "again"
    rep2 = convert_dataset(ConvertConfig("vitonhd", exported, again))
    assert rep2.nsamples == 3 and not rep2.failures
    first, second = _samples(vitonhd_shards), _samples(again)
    assert sorted(first) == sorted(second)
    for key in first:
        a, b = first[key].members, second[key].members
        for member in ("cloth_mask.png", "agn_mask.png", "gt_cloth_warped_mask.png", "parse.png", "parse_agn.png"):
            assert a[member] == b[member] or np.array_equal(codecs.decode_member(member, a[member]),
                                                           codecs.decode_member(member, b[member])), (key, member)
        for member in ("image.jpg", "cloth.jpg", "agn.jpg", "image_densepose.jpg"):
            x = codecs.decode_rgb(a[member]).astype(int)
            y = codecs.decode_rgb(b[member]).astype(int)
            assert np.abs(x - y).mean() < 1.0, (key, member)
        assert json.loads(a["pose.json"]) == json.loads(b["pose.json"])


def test_resume_and_parallel_give_identical_shards(tmp_path, data_dir):
    one = tmp_path / "one"
    convert_dataset(ConvertConfig("vitonhd", data_dir / "vitonhd-official", one, samples_per_shard=1))
    two = tmp_path / "two"
    convert_dataset(ConvertConfig("vitonhd", data_dir / "vitonhd-official", two, samples_per_shard=1, workers=2))
    for tar in list_shards(one):
        assert tar.read_bytes() == (two / tar.name).read_bytes()
    # simulate a run killed after shard 0: stats of later shards gone, a half tar left behind
    (one / "00001_stats.json").unlink()
    (one / "00002_stats.json").unlink()
    (one / "00002.tar").write_bytes(b"garbage")
    rep = convert_dataset(ConvertConfig("vitonhd", data_dir / "vitonhd-official", one, samples_per_shard=1))
    assert rep.skipped_shards == 1 and rep.nsamples == 3
    for tar in list_shards(two):
        assert tar.read_bytes() == (one / tar.name).read_bytes()
    assert validate_shards(one).ok
    with pytest.raises(ConfigError, match="different plan"):
        convert_dataset(ConvertConfig("vitonhd", data_dir / "vitonhd-official", one, samples_per_shard=2))


def test_bad_inputs_are_recorded_and_good_samples_kept(tmp_path, data_dir):
    root = tmp_path / "root"
    shutil.copytree(data_dir / "vitonhd-official", root)
    (root / "image" / "03615_00.jpg").write_bytes(b"\xff\xd8\xff truncated")  # broken JPEG
    (root / "openpose-json" / "07445_00_keypoints.json").write_text('{"people": []}')  # nobody detected
    with open(root / "test_pairs.txt", "a") as fh:
        fh.write("99999_00.jpg 01430_00.jpg\n")  # person that does not exist
    out = tmp_path / "out"
    rep = convert_dataset(ConvertConfig("vitonhd", root, out))
    assert rep.nsamples == 1
    reasons = {(Path(f.source).name, f.stage) for f in rep.failures}
    assert ("03615_00.jpg", "image") in reasons
    assert ("07445_00_keypoints.json", "pose") in reasons
    assert ("99999_00.jpg", "plan") in reasons
    assert validate_shards(out).ok


def test_missing_source_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        convert_dataset(ConvertConfig("vitonhd", tmp_path / "nope", tmp_path / "out"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no samples found"):
        convert_dataset(ConvertConfig("vitonhd", tmp_path / "empty", tmp_path / "out"))


def make_dresscode_tree(data_dir: Path, root: Path) -> Path:
    """A DressCode-layout folder made from the official VITON-HD sample (no DressCode annotations are bundled):
    CIHP parse -> ATR label map, BODY_25 -> COCO-18 keypoints at 384x512 (4 values each), approximate DensePose
    part indices as dense/, garments as the *_1 images."""
    from vitonprep.backends.densepose_approx import approximate_densepose_parts
    from vitonprep.derive.body25 import OpenPoseKeypoints, body25_to_coco18
    from vitonprep.derive.labels import cihp_to_atr

    src = data_dir / "vitonhd-official"
    cat = root / "upper_body"
    for sub in ("images", "keypoints", "label_maps", "dense"):
        (cat / sub).mkdir(parents=True, exist_ok=True)
    pairs = []
    for n, (pid, cid) in enumerate([("00891_00", "01430_00"), ("07445_00", "06429_00")]):
        base = f"{n + 1:06d}"
        shutil.copy(src / "image" / f"{pid}.jpg", cat / "images" / f"{base}_0.jpg")
        shutil.copy(src / "cloth" / f"{cid}.jpg", cat / "images" / f"{base}_1.jpg")
        parse = np.asarray(Image.open(src / "image-parse" / f"{pid}.png"))
        Image.fromarray(cihp_to_atr(parse), "L").save(cat / "label_maps" / f"{base}_4.png")
        kp = OpenPoseKeypoints.from_json_dict(json.loads((src / "openpose-json" / f"{pid}_keypoints.json").read_text()))
        coco = body25_to_coco18(kp.pose)
        pts = [[float(x) / 2, float(y) / 2, float(c), -1.0] if c > 0 else [0.0, 0.0, 0.0, -1.0] for x, y, c in coco]
        (cat / "keypoints" / f"{base}_2.json").write_text(json.dumps({"keypoints": pts}))
        Image.fromarray(approximate_densepose_parts(parse, kp.pose), "L").save(cat / "dense" / f"{base}_5.png")
        pairs.append(f"{base}_0.jpg {base}_1.jpg")
    (cat / "test_pairs_paired.txt").write_text("\n".join(pairs) + "\n")
    (cat / "test_pairs_unpaired.txt").write_text("000001_0.jpg 000002_1.jpg\n")
    return root


def test_convert_dresscode(tmp_path, data_dir):
    root = make_dresscode_tree(data_dir, tmp_path / "DressCode")
    out = tmp_path / "out"
    rep = convert_dataset(ConvertConfig("dresscode", root, out))
    assert rep.nsamples == 3, rep.failures
    samples = _samples(out)
    assert sorted(samples) == ["000001_0", "000001_0__000002_1", "000002_0"]
    s = samples["000001_0"]
    meta = _meta(s)
    assert meta["category"] == "upper_body" and meta["pair"] == "paired"
    assert meta["producers"]["cloth_mask"]["backend"] == "cloth-mask-opencv"
    agn_mask = codecs.decode_mask(s.members["agn_mask.png"])
    parse = codecs.decode_labels(s.members["parse.png"])
    # the DressCode mask covers the worn upper garment
    upper = parse == 5
    assert agn_mask[upper].mean() > 0.95
    assert validate_shards(out).ok, [i.message for i in validate_shards(out).errors]
