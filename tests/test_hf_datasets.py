"""Hugging Face `datasets` reads vitonprep shards with masks, label maps and JSON intact (docs/huggingface.md).

Every member `load_dataset("webdataset", ...)` returns is decoded with the contract's decoders
(`vitonprep.codecs.decode_member`) and compared with the same member decoded from the tar directly: labels and
masks exact, JSON equal. The shards mix what a real dataset mixes: built and converted samples, several shards, a
person-only sample (no garment members) and a `quality` field in meta.json that only a later sample carries.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

os.environ["HF_DATASETS_OFFLINE"] = "1"  # read before datasets is imported: never reach the Hub

import datasets  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from datasets import Features, Image, Json, Value  # noqa: E402

from vitonprep.build import build_dataset  # noqa: E402
from vitonprep.codecs import decode_member, encode_json  # noqa: E402
from vitonprep.config import load_pipeline_config  # noqa: E402
from vitonprep.schema import FIELDS  # noqa: E402
from vitonprep.shards import iter_tar_samples, list_shards  # noqa: E402

from conftest import raw_from_bundled_pairs  # noqa: E402

datasets.disable_progress_bars()

#: the features docs/huggingface.md gives: every image member as its stored bytes, every JSON member as text
CONTRACT_FEATURES = Features({
    **{f.member: Image(decode=False) if f.member.endswith((".png", ".jpg")) else Json(decode=False)
       for f in FIELDS},
    "__key__": Value("string"),
    "__url__": Value("string"),
})
QUALITY = {"flags": [{"check": "left_right", "reason": "shoulders and hips mirrored"}],
           "scores": {"left_right": 0.1234, "crossing_limbs": 0.0}}


def _write_tar(path: Path, samples: list[tuple[str, dict[str, bytes]]]) -> None:
    with tarfile.open(path, "w") as tf:
        for key, members in samples:
            for name, data in members.items():
                info = tarfile.TarInfo(f"{key}.{name}")
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))


def _with_quality(members: dict[str, bytes], quality: dict | None) -> dict[str, bytes]:
    """The sample with meta.json's quality field set to ``quality`` (None: without the field, never checked)."""
    meta = {k: v for k, v in json.loads(members["meta.json"]).items() if k != "quality"}
    return {**members, "meta.json": encode_json(meta if quality is None else {**meta, "quality": quality})}


@pytest.fixture(scope="module")
def tars(tmp_path_factory, vitonhd_shards) -> list[Path]:
    """Two one-sample built shards, a person-only sample, the converted official sample (2 shards), and a shard
    whose 6th sample (the first 5 being without it) carries meta.json's quality field."""
    tmp = tmp_path_factory.mktemp("hf")
    raw = raw_from_bundled_pairs(tmp / "raw", ("00034_00.jpg", "00035_00.jpg"))
    cfg = load_pipeline_config("default", {"samples_per_shard": 1})
    assert build_dataset(cfg, raw, tmp / "built").nsamples == 2
    flat = tmp / "flat"
    flat.mkdir()
    (flat / "00055_00.jpg").write_bytes((Path(__file__).parents[1] / "data/samples/person/00055_00.jpg").read_bytes())
    assert build_dataset(load_pipeline_config("default"), flat, tmp / "person_only").nsamples == 1
    built = list_shards(tmp / "built")
    samples = [(s.key, dict(s.members)) for t in (*built, *list_shards(vitonhd_shards)) for s in iter_tar_samples(t)]
    late = [(f"unchecked_{i}", _with_quality(samples[i % 2][1], None)) for i in range(5)]  # two built samples
    late.append(("quality_late", _with_quality(samples[0][1], QUALITY)))
    _write_tar(tmp / "late.tar", late)
    return [*built, *list_shards(tmp / "person_only"), *list_shards(vitonhd_shards), tmp / "late.tar"]


def _tar_members(tars: list[Path]) -> dict[str, dict[str, bytes]]:
    return {s.key: dict(s.members) for t in tars for s in iter_tar_samples(t)}


def _load(tars: list[Path], cache: Path, features: Features | None = None) -> datasets.Dataset:
    return datasets.load_dataset("webdataset", data_files={"train": [str(t) for t in tars]}, split="train",
                                 features=features, cache_dir=str(cache))


def _same(got, want) -> bool:
    if isinstance(want, np.ndarray):
        return isinstance(got, np.ndarray) and got.dtype == want.dtype and np.array_equal(got, want)
    return got == want


def test_every_member_read_through_datasets_decodes_as_from_the_tar(tars, tmp_path):
    want = _tar_members(tars)
    ds = _load(tars, tmp_path / "cache", CONTRACT_FEATURES)
    assert sorted(ds["__key__"]) == sorted(want)
    kinds = set()
    for row in ds:
        members = want[row["__key__"]]
        for name in CONTRACT_FEATURES:
            if name.startswith("__"):
                continue
            value = row[name]
            if name not in members:
                assert value is None, (row["__key__"], name)  # absent stays absent (person-only: no cloth)
                continue
            data = value["bytes"] if isinstance(value, dict) else value.encode("utf-8")
            got, expected = decode_member(name, data), decode_member(name, members[name])
            assert _same(got, expected), (row["__key__"], name)
            kinds.add(name)
    # the check covered the label maps, masks and JSON of the contract, and the late quality field
    assert {"parse.png", "parse_agn.png", "agn_mask.png", "cloth_mask.png", "gt_cloth_warped_mask.png",
            "pose.json", "meta.json", "caption.json"} <= kinds
    late = next(r for r in ds if r["__key__"] == "quality_late")
    assert json.loads(late["meta.json"])["quality"] == QUALITY
    person_only = [r for r in ds if json.loads(r["meta.json"])["pair"] == "person_only"]
    assert len(person_only) == 1 and person_only[0]["cloth.jpg"] is None


def test_datasets_image_feature_keeps_label_indices_and_mask_values(tars, tmp_path):
    """datasets' own decoding (PIL, mode untouched): a label map stays a 'P' image whose pixels are the labels,
    also through the numpy format; a mask is 'L' 0/255. Converting a label map to RGB gives its palette colours."""
    want = _tar_members(tars[:1])
    features = Features({**{n: Image() if isinstance(f, Image) else f for n, f in CONTRACT_FEATURES.items()}})
    ds = _load(tars[:1], tmp_path / "cache", features)
    row = ds[0]
    members = want[row["__key__"]]
    labels = decode_member("parse.png", members["parse.png"])
    assert row["parse.png"].mode == "P" and np.array_equal(np.asarray(row["parse.png"]), labels)
    mask = decode_member("agn_mask.png", members["agn_mask.png"])
    assert row["agn_mask.png"].mode == "L" and np.array_equal(np.asarray(row["agn_mask.png"]), mask * np.uint8(255))
    assert np.array_equal(ds.with_format("numpy")[0]["parse.png"], labels)
    rgb = np.asarray(row["parse.png"].convert("RGB"))
    assert rgb.shape == (*labels.shape, 3) and not np.array_equal(rgb[..., 0], labels)  # what mode="RGB" gives


def test_inferred_features_drop_a_meta_key_first_seen_after_five_samples(tars, tmp_path):
    """Why the documented recipe passes features: left to infer them, datasets types JSON members from the first
    five samples of the first shard and silently drops what a later sample adds (here meta.json's quality)."""
    ds = _load(tars[-1:], tmp_path / "cache")
    late = next(r for r in ds if r["__key__"] == "quality_late")
    assert "quality" not in late["meta.json"]
