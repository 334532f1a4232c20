"""`vitonprep export --format ...` on shards made from data/, each layout read back by a reader written here from
the consumer's documented loader (docs/exports.md names the repo and file for each)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from vitonprep import codecs
from vitonprep.build import build_dataset
from vitonprep.cli import app
from vitonprep.config import load_pipeline_config
from vitonprep.derive.body25 import OpenPoseKeypoints, body25_to_coco18
from vitonprep.export import EXPORTERS, export_dataset
from vitonprep.shards import iter_tar_samples, list_shards
from vitonprep.validate import validate_shards

runner = CliRunner()


def _samples(shards: Path) -> dict:
    out = {}
    for tar in list_shards(shards):
        for s in iter_tar_samples(tar):
            out[s.key] = (s, codecs.decode_json(s.members["meta.json"]))
    return out


@pytest.fixture(scope="module")
def built_shards(tmp_path_factory, data_dir) -> Path:
    """Raw photos from data/samples built with the default pipeline plus garment-wearer pose (off by default): one
    paired sample (the garment photo of the pair is a person photo, as for in-the-wild garments) and one unpaired
    sample with a flat shop garment."""
    raw = tmp_path_factory.mktemp("raw") / "raw"
    (raw / "person").mkdir(parents=True)
    (raw / "cloth").mkdir()
    shutil.copy(data_dir / "samples/person/00034_00.jpg", raw / "person/00034_00.jpg")
    shutil.copy(data_dir / "samples/person/00035_00.jpg", raw / "person/00035_00.jpg")
    shutil.copy(data_dir / "samples/cloth/04469_00.jpg", raw / "cloth/04469_00.jpg")
    # a garment photo that shows a person wearing it: the person photo 00035_00 itself (paired)
    shutil.copy(data_dir / "samples/person/00035_00.jpg", raw / "cloth/00035_00.jpg")
    (raw / "pairs.txt").write_text("00034_00.jpg 04469_00.jpg\n00035_00.jpg 00035_00.jpg\n")
    out = tmp_path_factory.mktemp("built") / "shards"
    cfg = load_pipeline_config("default", {"samples_per_shard": 2, "stages.garment_pose": {
        "backend": "pose-mediapipe-blazepose", "params": {"face": False, "hands": False}}})
    rep = build_dataset(cfg, raw, out)
    assert rep.nsamples == 2, rep.failures
    return out


@pytest.fixture(scope="module", params=["vitonhd_shards", "built_shards"])
def shards(request) -> Path:
    return request.getfixturevalue(request.param)


def test_built_shards_carry_caption_and_garment_pose_and_validate(built_shards):
    rep = validate_shards(built_shards)
    assert rep.ok, [i.message for i in rep.errors]
    samples = _samples(built_shards)
    s, meta = samples["00034_00__04469_00"]
    cap = codecs.decode_member("caption.json", s.members["caption.json"])
    assert cap["source"] == "garment-tags-geometric" and cap["approximate"] is True
    assert cap["sleeve"] == "short" and cap["caption"] == "model is wearing Short Sleeve top"
    assert "cloth_pose.json" not in s.members  # flat shop photo: no person, the stage is off
    assert meta["cloth_pose_status"].startswith("no person")
    assert meta["producers"]["caption"]["backend"] == "garment-tags-geometric"
    s2, meta2 = samples["00035_00"]
    worn = OpenPoseKeypoints.from_json_dict(json.loads(s2.members["cloth_pose.json"]))
    person = OpenPoseKeypoints.from_json_dict(json.loads(s2.members["pose.json"]))
    assert meta2["cloth_pose_status"] == "person found"
    # the garment photo is the person photo: the wearer's pose is the person's pose
    both = (worn.pose[:, 2] > 0) & (person.pose[:, 2] > 0)
    assert both.sum() >= 10 and np.abs(worn.pose[both, :2] - person.pose[both, :2]).max() < 2.0


def test_older_shards_without_the_new_members_stay_valid(vitonhd_shards):
    assert all("caption.json" not in s.members for s, _ in _samples(vitonhd_shards).values())
    assert validate_shards(vitonhd_shards).ok


def test_damaged_caption_fails_validation(built_shards, tmp_path):
    import tarfile

    src = list_shards(built_shards)[0]
    dst_dir = tmp_path / "bad"
    shutil.copytree(built_shards, dst_dir)
    dst = dst_dir / src.name
    with tarfile.open(src) as tin, tarfile.open(dst, "w") as tout:
        for m in tin.getmembers():
            data = tin.extractfile(m).read()
            if m.name.endswith("caption.json"):
                data = json.dumps({"caption": "model is wearing a top"}).encode()  # no source, no version
                m.size = len(data)
            import io

            tout.addfile(m, io.BytesIO(data))
    rep = validate_shards(dst_dir)
    assert not rep.ok and any("caption" in i.message for i in rep.errors)


# ---------------------------------------------------------------- readers written from each consumer's layout

def read_idm_vton(root: Path, phase: str) -> list[dict]:
    """yisol/IDM-VTON train_xl.py / inference.py VitonHDDataset, unpaired order."""
    data = json.loads((root / phase / f"vitonhd_{phase}_tagged.json").read_text())
    annotation = {}
    for elem in data["data"]:
        assert set(elem) >= {"file_name", "category_name", "tag_info"}
        words = ""
        for name in ("sleeveLength", "neckLine", "item"):
            for tag in elem["tag_info"]:
                assert set(tag) == {"tag_name", "tag_category"}
                if tag["tag_name"] == name and tag["tag_category"] is not None:
                    words += tag["tag_category"] + " "
        annotation[elem["file_name"]] = words
    items = []
    for line in (root / f"{phase}_pairs.txt").read_text().splitlines():
        im_name, c_name = line.strip().split()
        cloth = Image.open(root / phase / "cloth" / c_name)
        image = Image.open(root / phase / "image" / im_name)
        mask = np.asarray(Image.open(root / phase / "agnostic-mask" / im_name.replace(".jpg", "_mask.png")))
        dense = Image.open(root / phase / "image-densepose" / im_name)
        items.append({"c_name": c_name, "caption": "model is wearing " + annotation.get(c_name, "shirts"),
                      "in_json": c_name in annotation, "cloth": cloth, "image": image, "mask": mask, "dense": dense})
    return items


def read_dresscode(root: Path, category: str, phase_file: str) -> list[dict]:
    """aimagelab/dress-code data/dataset.py + IDM-VTON inference_dc.py (dc_caption.txt)."""
    cat = root / category
    captions = {}
    if (cat / "dc_caption.txt").is_file():
        for line in (cat / "dc_caption.txt").read_text().splitlines():
            parts = line.strip().split(" ")
            captions[parts[0]] = " ".join(parts[1:])
    items = []
    for line in (cat / phase_file).read_text().splitlines():
        im_name, c_name = line.strip().split()
        keypoints = json.loads((cat / "keypoints" / im_name.replace("_0.jpg", "_2.json")).read_text())["keypoints"]
        items.append({
            "im_name": im_name, "c_name": c_name,
            "cloth": Image.open(cat / "images" / c_name), "image": Image.open(cat / "images" / im_name),
            "skeleton": Image.open(cat / "skeletons" / im_name.replace("_0", "_5")),
            "parse": Image.open(cat / "label_maps" / im_name.replace("_0.jpg", "_4.png")),
            "pose": np.array(keypoints).reshape((-1, 4)),
            "uv": np.load(cat / "dense" / im_name.replace("_0.jpg", "_5_uv.npz"))["uv"],
            "labels": Image.open(cat / "dense" / im_name.replace("_0.jpg", "_5.png")),
            "densepose": Image.open(cat / "image-densepose" / im_name),
            "caption": captions.get(c_name, category),
        })
    return items


def read_tryondiffusion(root: Path, split: str, res: int) -> list[dict]:
    """The batch fashn-AI/tryondiffusion's trainer takes (examples/test_tryon_imagen_trainer.py), for the training
    (paired) and the try-on (unpaired) keys alike."""
    items = []
    keys = [k for index in ("index.json", "index_unpaired.json")
            for k in json.loads((root / split / index).read_text())]
    for key in keys:
        def img(name, key=key):
            a = np.asarray(Image.open(root / split / str(res) / name / f"{key}.png"), np.float32)
            return a.transpose(2, 0, 1) / 127.5 - 1.0  # 3xHxW in [-1, 1] (auto_normalize_img=False)

        poses = json.loads((root / split / "poses" / f"{key}.json").read_text())
        items.append({"key": key, "person_images": img("person"), "ca_images": img("ca"),
                      "garment_images": img("garment"), "person_poses": np.array(poses["person_pose"], np.float32),
                      "garment_poses": np.array(poses["garment_pose"], np.float32), "raw": poses})
    return items


def test_every_format_exports_and_reads_back(shards, tmp_path):
    samples = _samples(shards)
    with_cloth = {k: v for k, v in samples.items() if "cloth.jpg" in v[0].members}
    # built_shards' paired garment photo is a person photo, which the quality checks flag (garment_face): kept here,
    # where every sample is read back (tests/test_quality_readers.py covers leaving flagged samples out)
    reports = {fmt: export_dataset(fmt, shards, tmp_path / fmt, keep_flagged=True) for fmt in EXPORTERS}
    assert all(r.nsamples == len(samples) for f, r in reports.items() if f != "tryondiffusion")

    # IDM-VTON
    split = next(iter(samples.values()))[1]["split"]
    idm = read_idm_vton(tmp_path / "idm-vton", split)
    assert len(idm) == len(reports["idm-vton"].pairs[f"{split}_pairs.txt"])
    for it in idm:
        assert it["in_json"], it["c_name"]  # every garment is tagged, none falls back to "shirts"
        assert it["caption"].startswith("model is wearing ")
        assert "Sleeve" in it["caption"] or "Sleeveless" in it["caption"]
        assert it["image"].size == it["cloth"].size == it["dense"].size == (768, 1024)
        assert it["image"].mode == it["dense"].mode == "RGB"
        assert it["mask"].ndim == 2 and set(np.unique(it["mask"])) <= {0, 255} and it["mask"].any()

    # DressCode
    dc_root = tmp_path / "dresscode"
    ids = json.loads((dc_root / "vitonprep_ids.json").read_text())["ids"]
    n_dc = 0
    for pair_file in sorted(dc_root.glob("*/*_pairs*.txt")):
        for it in read_dresscode(dc_root, pair_file.parent.name, pair_file.name):
            n_dc += 1
            assert it["image"].size == it["cloth"].size == it["parse"].size == it["labels"].size == (768, 1024)
            assert it["parse"].mode == "L" and np.asarray(it["parse"]).max() <= 17
            assert np.asarray(it["labels"]).max() <= 24 and np.asarray(it["labels"]).any()
            assert it["uv"].shape == (2, 1024, 768)
            assert it["pose"].shape == (18, 4)
            xy = it["pose"][:, :2]
            assert (xy[:, 0] <= 384).all() and (xy[:, 1] <= 512).all() and (xy >= 0).all()
            # keypoints are the shard's pose, scaled from 768x1024 to 384x512
            pid = ids[it["im_name"][:6]]
            key = next(k for k, (_, m) in samples.items() if m["person_id"] == pid)
            coco = body25_to_coco18(OpenPoseKeypoints.from_json_dict(
                json.loads(samples[key][0].members["pose.json"])).pose)
            seen = coco[:, 2] > 0
            assert np.allclose(xy[seen], coco[seen, :2] / 2, atol=0.01)
            assert (xy[~seen] == 0).all()
            assert it["caption"] != pair_file.parent.name  # the garment has a dc_caption line
    assert n_dc == sum(1 for _, m in samples.values() if m["pair"] != "person_only")

    # TryOnDiffusion
    td = tmp_path / "tryondiffusion"
    for res in (128, 256):
        items = read_tryondiffusion(td, split, res)
        assert len(items) == len(with_cloth)
        for it in items:
            for name in ("person_images", "ca_images", "garment_images"):
                assert it[name].shape == (3, res, res) and it[name].min() >= -1 and it[name].max() <= 1
            for name in ("person_poses", "garment_poses"):
                assert it[name].shape == (18, 2) and np.abs(it[name]).max() <= 1
            raw = it["raw"]
            assert raw["garment_pose_source"] in ("cloth_photo", "paired_person", "none")
            # the person pose lands on the person: neck inside the padded square's middle band
            assert raw["person_visible"][1] == 1 and -0.5 < raw["person_pose"][1][0] < 0.5
            if raw["garment_pose_source"] == "none":
                assert raw["garment_visible"] == [0] * 18
            else:
                assert sum(raw["garment_visible"]) >= 8


def test_tryondiffusion_uses_the_garment_wearer_pose(built_shards, tmp_path):
    rep = export_dataset("tryondiffusion", built_shards, tmp_path / "td", keep_flagged=True)
    assert rep.notes["garment_pose_sources"] == {"cloth_photo": 1, "none": 1}
    poses = json.loads((tmp_path / "td/train/poses/00035_00.json").read_text())
    assert poses["garment_pose_source"] == "cloth_photo"
    p, g = np.array(poses["person_pose"]), np.array(poses["garment_pose"])
    vis = np.array(poses["person_visible"], bool) & np.array(poses["garment_visible"], bool)
    assert np.abs(p[vis] - g[vis]).max() < 0.01


def test_idm_vton_prefers_stored_captions(built_shards, tmp_path):
    rep = export_dataset("idm-vton", built_shards, tmp_path / "idm", keep_flagged=True)
    assert rep.notes["caption_sources"] == {"garment-tags-geometric": 2}
    data = json.loads((tmp_path / "idm/train/vitonhd_train_tagged.json").read_text())["data"]
    assert [e["file_name"] for e in data] == ["00035_00.jpg", "04469_00.jpg"]


@pytest.mark.parametrize("fmt", ["vitonhd", "idm-vton", "dresscode", "tryondiffusion"])
def test_cli_export_formats(vitonhd_shards, tmp_path, fmt):
    result = runner.invoke(app, ["export", str(vitonhd_shards), str(tmp_path / fmt), "--format", fmt])
    assert result.exit_code == 0, result.output
    assert "exported 3 samples" in result.output


def test_cli_export_rejects_unknown_format(vitonhd_shards, tmp_path):
    result = runner.invoke(app, ["export", str(vitonhd_shards), str(tmp_path / "x"), "--format", "catvton"])
    assert result.exit_code == 2


def test_tryondiffusion_as_shards_holds_the_same_bytes_as_the_files(vitonhd_shards, tmp_path):
    import tarfile

    export_dataset("tryondiffusion", vitonhd_shards, tmp_path / "files")
    rep = export_dataset("tryondiffusion", vitonhd_shards, tmp_path / "tars", as_shards=True)
    assert rep.nsamples == 3
    assert json.loads((tmp_path / "files/test/index.json").read_text()) == []  # the official test pairs: unpaired
    for res in (128, 256):
        assert not (tmp_path / "tars/test" / f"tryondiffusion-{res}.tar").exists()
        tar_path = tmp_path / "tars/test" / f"tryondiffusion-{res}-unpaired.tar"
        with tarfile.open(tar_path) as tar:
            members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
        keys = json.loads((tmp_path / "files/test/index_unpaired.json").read_text())
        assert sorted(members) == sorted(f"{k}.{n}" for k in keys
                                         for n in ("person.png", "ca.png", "garment.png", "poses.json"))
        for k in keys:
            for n in ("person", "ca", "garment"):
                assert members[f"{k}.{n}.png"] == (tmp_path / "files/test" / str(res) / n / f"{k}.png").read_bytes()
            assert members[f"{k}.poses.json"] == (tmp_path / "files/test/poses" / f"{k}.json").read_bytes()
    assert not list((tmp_path / "tars").rglob("*.partial"))
    result = runner.invoke(app, ["export", str(vitonhd_shards), str(tmp_path / "x"), "--format", "dresscode",
                                 "--shards"])
    assert result.exit_code == 1 and "only for the tryondiffusion" in result.output


# ---------------------------------------------------------------- one rule for unpaired samples, every format

#: (paired list, unpaired list) of split train, the paired one being the list the format's trainer reads
TRAIN_LISTS = {"vitonhd": ("train_pairs.txt", "train_pairs_unpaired.txt"),
               "idm-vton": ("train_pairs.txt", "train_pairs_unpaired.txt"),
               "dresscode": ("upper_body/train_pairs.txt", "upper_body/train_pairs_unpaired.txt"),
               "tryondiffusion": ("train/index.json", "train/index_unpaired.json")}


def _listed_keys(root: Path, fmt: str, rel: str, samples: dict) -> list[str]:
    """The sample keys a list names, read as the format's loader reads it (DressCode through the id map)."""
    text = (root / rel).read_text()
    if fmt == "tryondiffusion":
        return sorted(json.loads(text))
    ids = json.loads((root / "vitonprep_ids.json").read_text())["ids"] if fmt == "dresscode" else None
    keys = []
    for line in text.splitlines():
        person, cloth = (n.rsplit(".", 1)[0] for n in line.split())
        if ids is not None:
            person, cloth = ids[person[:6]], ids[cloth[:6]]
        keys.append(next(k for k, (_, m) in samples.items() if (m["person_id"], m["cloth_id"]) == (person, cloth)))
    return sorted(keys)


@pytest.mark.parametrize("fmt", sorted(TRAIN_LISTS))
def test_paired_samples_in_the_training_list_unpaired_only_in_the_unpaired_list(built_shards, tmp_path, fmt):
    samples = _samples(built_shards)
    rep = export_dataset(fmt, built_shards, tmp_path / fmt, keep_flagged=True)
    paired_list, unpaired_list = TRAIN_LISTS[fmt]
    assert rep.pairing == {"paired": 1, "unpaired": 1}
    assert rep.lists == {"paired": [paired_list], "unpaired": [unpaired_list]}
    assert _listed_keys(tmp_path / fmt, fmt, paired_list, samples) == ["00035_00"]
    assert _listed_keys(tmp_path / fmt, fmt, unpaired_list, samples) == ["00034_00__04469_00"]


@pytest.mark.parametrize("fmt", sorted(TRAIN_LISTS))
def test_all_unpaired_shards_list_every_pair_and_say_where(built_shards, tmp_path, fmt):
    """The usual case for one's own photos: every person wears another garment. (The paired sample of built_shards
    is flagged, garment_face, so a default export leaves it out and only the unpaired one remains.)"""
    samples = _samples(built_shards)
    result = runner.invoke(app, ["export", str(built_shards), str(tmp_path / fmt), "--format", fmt])
    assert result.exit_code == 0, result.output
    paired_list, unpaired_list = TRAIN_LISTS[fmt]
    assert _listed_keys(tmp_path / fmt, fmt, paired_list, samples) == []  # written, and empty: nothing to train on
    assert _listed_keys(tmp_path / fmt, fmt, unpaired_list, samples) == ["00034_00__04469_00"]
    text = " ".join(result.output.split())
    assert (f"pairs: 0 paired, 1 unpaired in {unpaired_list} (the person wears another garment: try-on inputs, "
            "never in a training list)") in text


def test_test_split_keeps_vitonhd_test_pairs_and_every_format_lists_it_unpaired(vitonhd_shards, tmp_path):
    """The official test pairs are unpaired: VITON-HD's test_pairs.txt holds them (StableVITON reads it at test
    time), and every format lists them in its unpaired test list."""
    samples = _samples(vitonhd_shards)
    keys = sorted(samples)
    unpaired = {"vitonhd": "test_pairs_unpaired.txt", "idm-vton": "test_pairs_unpaired.txt",
                "dresscode": "upper_body/test_pairs_unpaired.txt", "tryondiffusion": "test/index_unpaired.json"}
    for fmt, rel in unpaired.items():
        rep = export_dataset(fmt, vitonhd_shards, tmp_path / fmt)
        assert rep.pairing == {"unpaired": 3}
        assert _listed_keys(tmp_path / fmt, fmt, rel, samples) == keys
        paired = rep.lists["paired"]
        assert len(paired) == 1 and _listed_keys(tmp_path / fmt, fmt, paired[0], samples) == []
    for fmt in ("vitonhd", "idm-vton"):
        assert _listed_keys(tmp_path / fmt, fmt, "test_pairs.txt", samples) == keys


def test_dresscode_says_its_renamed_ids_on_the_console(vitonhd_shards, tmp_path):
    result = runner.invoke(app, ["export", str(vitonhd_shards), str(tmp_path / "dc"), "--format", "dresscode"])
    assert result.exit_code == 0, result.output
    ids = json.loads((tmp_path / "dc/vitonprep_ids.json").read_text())["ids"]
    assert len(ids) == 6  # 3 persons, 3 garments
    text = " ".join(result.output.split())
    assert f"renamed 6 ids to the format's numbers: the map back is {tmp_path / 'dc/vitonprep_ids.json'}" in text
    plain = runner.invoke(app, ["export", str(vitonhd_shards), str(tmp_path / "vh"), "--format", "vitonhd"])
    assert plain.exit_code == 0 and "renamed" not in plain.output
