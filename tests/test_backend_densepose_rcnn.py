"""DensePose R50-FPN s1x (``densepose-rcnn-r50-fpn``): weight loading, registry, and parity with detectron2.

How the parity fixture ``tests/fixtures/parity/densepose/densepose_r50_fpn_s1x.npz`` was made (details in that
folder's README.md): facebookresearch/detectron2 at commit 02b5c4e295e990042a714712c21dc79b731e8833 was built
CPU-only outside the project; ``make_fixtures.py`` there ran the official
``projects/DensePose/configs/densepose_rcnn_R_50_FPN_s1x.yaml`` through ``DefaultPredictor`` (test size 160,
score >= 0.8) with the weights of :func:`random_densepose_weights` (seed ``SEED``, written as a model-zoo
``.pkl`` and loaded by detectron2's checkpointer), ``model.double()``, one thread, on a 96x128 copy of
``data/samples/person/00034_00.jpg``; detectron2's ``batched_nms`` was wrapped to give torchvision float32
scores (it cannot run NMS on float64 scores otherwise). Forward hooks saved the backbone features (channel
slices), RPN proposals, box-predictor logits and deltas, detections, decoder output (slice), DensePose predictor
outputs (two instances, 112x112 coarse, every 4th pixel of fine/U/V), the final instances, the chart results
pasted into I/U/V maps and detectron2's own ``dp_segm`` rendering on black at alpha 1. The weights are
regenerated here from the seed; nothing from detectron2 runs in this test.
"""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from vitonprep.backends.protocols import Backend
from vitonprep.errors import InputError

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "parity" / "densepose"
ROOT = Path(__file__).resolve().parents[1]

SEED = 20261122
FIXTURE_SETTINGS = {"photo": "data/samples/person/00034_00.jpg", "photo_wh": [96, 128], "min_size": 160,
                    "max_size": 1333, "score_thresh": 0.8}

# Calibrated random initialisation. detectron2's own init makes the frozen BatchNorms identities and leaves the
# class logits near zero, so nothing would pass the 0.8 score. Here: He-normal convs/linears with per-module
# gains (the stem divided by 64 because it sees raw 0..255 pixels; box and anchor deltas small so that boxes stay
# near their anchors/proposals), random BatchNorm statistics, and a person-vs-background logit bias calibrated so
# that three persons pass 0.8 on the fixture photo (detectron2 key order fixes the random stream).
_GAINS = {"stem.conv1": 1 / 64, "fpn_": 0.7, "rpn_head.conv": 0.7, "objectness": 0.7, "anchor_deltas": 0.01,
          "box_head": 0.7, "cls_score": 12.0, "bbox_pred": 3.0, "decoder": 0.7}
_CLS_BIAS = -9.4


def _gain(key: str) -> float:
    return next((g for k, g in _GAINS.items() if k in key), 1.0)


def random_densepose_weights(seed: int, keys_shapes: list) -> dict[str, np.ndarray]:
    """float32 arrays for ``[(key, shape), ...]`` in that order, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    out = {}
    for key, shape in keys_shapes:
        shape = tuple(shape)
        if key.endswith("norm.weight"):
            # the last BatchNorm of each residual branch is scaled down to keep the 16 blocks from blowing up
            scale = 0.3 if ".conv3.norm" in key or ".shortcut.norm" in key else 1.0
            a = rng.uniform(0.5, 1.0, shape) * scale
        elif key.endswith("norm.bias") or key.endswith("running_mean"):
            a = rng.normal(0.0, 0.1, shape)
        elif key.endswith("running_var"):
            a = rng.uniform(0.5, 2.0, shape)
        elif key.endswith("cls_score.bias"):
            a = np.array([_CLS_BIAS / 2, -_CLS_BIAS / 2])
        elif key.endswith(".bias"):
            a = rng.normal(0.0, 0.01, shape)
        else:
            # transposed 4x4 stride-2 convs: each output sees a quarter of the kernel
            fan_in = int(np.prod(shape[1:])) if "lowres" not in key else shape[0] * shape[2] * shape[3] // 4
            a = rng.normal(0.0, np.sqrt(2.0 / fan_in) * _gain(key), shape)
        out[key] = a.astype(np.float32)
    return out


# ------------------------------------------------------------------------------------------------ helpers


def _official_keys() -> list:
    return json.loads((FIXTURES / "keys.json").read_text())


@pytest.fixture(scope="module")
def fixture() -> dict[str, np.ndarray]:
    with np.load(FIXTURES / "densepose_r50_fpn_s1x.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory) -> Path:
    from vitonprep.backends.densepose_rcnn_weights import write_detectron2_pkl

    path = tmp_path_factory.mktemp("dp") / "model_final_162be9.pkl"
    write_detectron2_pkl(random_densepose_weights(SEED, _official_keys()), path)
    return path


@pytest.fixture(scope="module")
def backend64(weights_file):
    from vitonprep.backends.densepose_rcnn import DensePoseRCNNBackend, DensePoseRCNNSettings

    s = FIXTURE_SETTINGS
    backend = DensePoseRCNNBackend(DensePoseRCNNSettings(min_size=s["min_size"], max_size=s["max_size"],
                                                         score_thresh=s["score_thresh"], dtype="float64"),
                                   weights_file)
    backend.setup()
    return backend


def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


# ------------------------------------------------------------------------------------------------ weights file


def test_port_has_the_official_keys_and_shapes():
    from vitonprep.backends.densepose_rcnn_model import DensePoseRCNN

    with torch.device("meta"):
        ours = [[k, list(v.shape)] for k, v in DensePoseRCNN().state_dict().items()]
    official = _official_keys()
    assert sorted((k, tuple(s)) for k, s in ours) == sorted((k, tuple(s)) for k, s in official)
    # 63.9 M parameters x 4 bytes: the size of the official 255,757,821-byte file less its pickle overhead
    assert sum(int(np.prod(s)) for _, s in official) == 63_927_330


def test_loader_reads_synthetic_official_file_and_refuses_bad_ones(tmp_path):
    from vitonprep.backends.densepose_rcnn_weights import WeightsFormatError, state_dict_from_pkl, write_detectron2_pkl

    shapes = {k: tuple(s) for k, s in _official_keys()}
    arrays = {k: np.zeros(s, np.float32) for k, s in shapes.items()}
    good = tmp_path / "good.pkl"
    write_detectron2_pkl(arrays, good)
    state = state_dict_from_pkl(good, shapes)
    assert list(state) == list(shapes)
    assert state["roi_heads.densepose_predictor.u_lowres.weight"].shape == (512, 25, 4, 4)

    missing = dict(arrays)
    del missing["roi_heads.decoder.p5.4.weight"]
    write_detectron2_pkl(missing, tmp_path / "missing.pkl")
    with pytest.raises(WeightsFormatError, match=r"roi_heads\.decoder\.p5\.4\.weight"):
        state_dict_from_pkl(tmp_path / "missing.pkl", shapes)

    wrong = dict(arrays)
    wrong["roi_heads.box_predictor.cls_score.weight"] = np.zeros((81, 1024), np.float32)
    write_detectron2_pkl(wrong, tmp_path / "wrong.pkl")
    with pytest.raises(WeightsFormatError, match=r"cls_score\.weight.*\(81, 1024\).*\(2, 1024\)"):
        state_dict_from_pkl(tmp_path / "wrong.pkl", shapes)


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_loader_never_runs_pickled_code(tmp_path, capsys):
    from vitonprep.backends.densepose_rcnn_weights import WeightsFormatError, read_detectron2_pkl

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"model": {"a": np.zeros(2)}, "x": _Evil()}))
    with pytest.raises(WeightsFormatError, match=r"refusing to unpickle builtins\.print"):
        read_detectron2_pkl(path)
    assert "must never run" not in capsys.readouterr().out
    (tmp_path / "caffe2.pkl").write_bytes(pickle.dumps({"blobs": {"conv1_w": np.zeros(2)}}))
    with pytest.raises(WeightsFormatError, match="'model' dict"):
        read_detectron2_pkl(tmp_path / "caffe2.pkl")


# ------------------------------------------------------------------------------------------------ registry


def test_registry_fails_before_any_image_when_weights_are_missing(tmp_path, monkeypatch):
    from vitonprep.backends.registry import make_backend
    from vitonprep.config import BackendChoice
    from vitonprep.errors import ConfigError

    monkeypatch.delenv("VITONPREP_WEIGHTS_DIR", raising=False)
    with pytest.raises(ConfigError, match="model_final_162be9.pkl"):
        make_backend("densepose", BackendChoice("densepose-rcnn-r50-fpn"), str(tmp_path))
    with pytest.raises(ConfigError, match="unexpected keyword"):
        make_backend("densepose", BackendChoice("densepose-rcnn-r50-fpn", {"wieghts": "x"}), str(tmp_path))


def test_registry_reports_missing_detectron2(weights_file, caplog):
    from vitonprep.backends import densepose_detectron2
    from vitonprep.backends.densepose_rcnn import DensePoseRCNNBackend
    from vitonprep.backends.registry import make_backend, producer_of
    from vitonprep.config import BackendChoice
    from vitonprep.errors import ConfigError

    if not densepose_detectron2.missing_modules():
        pytest.skip("detectron2 and densepose are importable here")
    params = {"weights": str(weights_file)}
    with pytest.raises(ConfigError, match="detectron2"):
        make_backend("densepose", BackendChoice("densepose-rcnn-r50-fpn", {**params, "implementation": "detectron2"}))
    with pytest.raises(densepose_detectron2.Detectron2Unavailable, match="cannot be imported"):
        densepose_detectron2.Detectron2DensePose(None, weights_file)
    with caplog.at_level(logging.INFO, logger="vitonprep.backends.densepose_rcnn"):
        backend = make_backend("densepose", BackendChoice("densepose-rcnn-r50-fpn", params))
    producer = producer_of(backend)
    assert isinstance(backend.impl, DensePoseRCNNBackend) and backend.impl.model is None  # nothing loaded yet
    assert producer.backend == "densepose-rcnn-r50-fpn" and producer.approximate is False
    assert "not importable, using the torchvision port" in caplog.text


def test_backend_rejects_a_label_map(weights_file):
    from vitonprep.backends.densepose_rcnn import DensePoseRCNNBackend, DensePoseRCNNSettings

    backend = DensePoseRCNNBackend(DensePoseRCNNSettings(), weights_file)
    with pytest.raises(TypeError, match="RGB photo"):
        backend(np.zeros((64, 48), np.uint8))


# ------------------------------------------------------------------------------------------------ parity (float64)


def test_resize_matches_detectron2(fixture):
    from vitonprep.backends.densepose_rcnn import resize_bgr

    s = FIXTURE_SETTINGS
    ours = resize_bgr(fixture["image_rgb"][:, :, ::-1], s["min_size"], s["max_size"])
    np.testing.assert_array_equal(ours, fixture["resized_bgr"])


@pytest.fixture(scope="module")
def stages64(backend64, fixture):
    m = backend64.model
    x = torch.as_tensor(fixture["resized_bgr"].astype(np.float32).transpose(2, 0, 1))
    with torch.no_grad():
        xx, size = m.preprocess(x.to(torch.float64))
        feats = m.features(xx)
    return m, feats, size


def test_backbone_features_match(stages64, fixture):
    _, feats, _ = stages64
    channels = {"p2": 8, "p3": 16, "p4": 32, "p5": 256, "p6": 256}
    for name, c in channels.items():
        assert _rel(feats[name][0, :c].numpy(), fixture[name]) < 1e-9, name


def test_rpn_proposals_match(stages64, fixture):
    m, feats, size = stages64
    with torch.no_grad():
        boxes, logits = m.proposals(feats, size)
    assert boxes.dtype == torch.float32 and boxes.shape == fixture["proposals"].shape
    np.testing.assert_allclose(boxes.numpy(), fixture["proposals"], rtol=0, atol=1e-4)
    assert _rel(logits.numpy(), fixture["objectness"]) < 1e-9


def test_box_head_and_detections_match(stages64, fixture):
    m, feats, size = stages64
    proposals = torch.from_numpy(fixture["proposals"])
    with torch.no_grad():
        logits, deltas = m.box_outputs(feats, proposals)
    assert _rel(logits.numpy(), fixture["box_logits"]) < 1e-9
    assert _rel(deltas.numpy(), fixture["box_deltas"]) < 1e-9
    # detection from the original's own head outputs: the kept boxes must be identical
    det = m.detect(torch.from_numpy(fixture["box_logits"]), torch.from_numpy(fixture["box_deltas"]), proposals, size)
    assert len(det.scores) == len(fixture["det_scores"]) >= 2
    np.testing.assert_array_equal(det.boxes.numpy(), fixture["det_boxes"])
    np.testing.assert_array_equal(det.scores.numpy(), fixture["det_scores"])


def test_densepose_head_matches(stages64, fixture):
    m, feats, _ = stages64
    sel = fixture["dp_index"]
    boxes = torch.from_numpy(fixture["det_boxes"][sel])
    with torch.no_grad():
        merged = m.roi_heads.decoder([feats[f"p{i}"] for i in range(2, 6)])
        out = m.densepose(feats, boxes)
    assert _rel(merged[0, :8].numpy(), fixture["decoder"]) < 1e-9
    assert out.coarse_segm.shape == (len(sel), 2, 112, 112) and out.fine_segm.shape == (len(sel), 25, 112, 112)
    assert _rel(out.coarse_segm.numpy(), fixture["dp_coarse"]) < 1e-6
    for name in ("fine", "u", "v"):
        ours = getattr(out, "fine_segm" if name == "fine" else name)[:, :, ::4, ::4].numpy()
        assert _rel(ours, fixture[f"dp_{name}"]) < 1e-6, name


def test_end_to_end_parts_match_detectron2(backend64, fixture):
    from vitonprep.derive.densepose import render_densepose

    result = backend64.predict(fixture["image_rgb"])
    np.testing.assert_allclose(result.boxes, fixture["final_boxes"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(result.scores, fixture["final_scores"], rtol=1e-9)
    differ = np.mean(result.parts != fixture["parts"])
    assert differ <= 0.001, f"{differ:.4%} of part labels differ"
    assert fixture["parts"].max() > 0 and len(np.unique(fixture["parts"])) > 5
    same = result.parts == fixture["parts"]
    # the original's U/V went through float32 (see make_fixtures.py), hence 1e-5 rather than 1e-6
    assert _rel(result.u[same], fixture["u"][same]) < 1e-5 and _rel(result.v[same], fixture["v"][same]) < 1e-5
    # detectron2's own dp_segm rendering (black canvas, alpha 1) is what spec 1.5 describes
    np.testing.assert_array_equal(render_densepose(fixture["parts"]), fixture["render_rgb"])
    assert np.mean(np.any(render_densepose(result.parts) != fixture["render_rgb"], axis=-1)) <= 0.001
    assert result.iuv().shape == (*fixture["parts"].shape, 3)


@pytest.mark.slow
def test_float32_difference_is_small_and_reported(weights_file, fixture, capsys):
    """The production dtype: report how far float32 lands from the float64 original."""
    from vitonprep.backends.densepose_rcnn import DensePoseRCNNBackend, DensePoseRCNNSettings

    s = FIXTURE_SETTINGS
    backend = DensePoseRCNNBackend(DensePoseRCNNSettings(min_size=s["min_size"], max_size=s["max_size"]), weights_file)
    result = backend.predict(fixture["image_rgb"])
    m = backend.model
    x = torch.as_tensor(fixture["resized_bgr"].astype(np.float32).transpose(2, 0, 1))
    with torch.no_grad():
        xx, _ = m.preprocess(x)
        feats = m.features(xx)
    rel_p2 = _rel(feats["p2"][0, :8].numpy(), fixture["p2"])
    differ = float(np.mean(result.parts != fixture["parts"]))
    with capsys.disabled():
        print(f"\nfloat32 vs float64 detectron2: p2 max rel diff {rel_p2:.2e}, part labels differing {differ:.4%}, "
              f"boxes max abs diff {np.abs(result.boxes - fixture['final_boxes']).max():.2e}")
    assert rel_p2 < 1e-4 and differ < 0.01


def test_no_person_is_an_error_not_a_blank_map():
    from vitonprep.backends.densepose_outputs import result_from_outputs
    from vitonprep.errors import NoPersonError

    with pytest.raises(NoPersonError):
        result_from_outputs(torch.zeros((0, 4)), torch.zeros(0), None, (213, 160), (128, 96))


class PhotoBackend(Backend):
    """A densepose back-end that reads the photo (registered by the test below)."""

    NAME, KIND, READS = "photo-test", "densepose", ("image",)
    seen: list[tuple[int, ...]] = []

    @property
    def note(self):
        return "parts from the photo (test back-end)"

    def __call__(self, rgb):
        self.seen.append(rgb.shape)
        return np.full(rgb.shape[:2], 2, np.uint8)


def test_densepose_stage_gives_photo_backends_the_photo(monkeypatch):
    """A back-end that declares ``READS = ("image",)`` (like this one) gets the photo; its note becomes the producer
    note. Adding it is one class and one registry line."""
    from vitonprep.backends import registry
    from vitonprep.config import BackendChoice
    from vitonprep.raw import RawItem
    from vitonprep.stages import DensePoseStage, SampleContext

    PhotoBackend.seen.clear()
    monkeypatch.setitem(registry.BACKENDS["densepose"], "photo-test", f"{__name__}:PhotoBackend")
    stage = DensePoseStage(BackendChoice("photo-test"))
    assert stage.reads == ("image",)
    ctx = SampleContext(RawItem("k", "k.jpg", None, "person_only", "."), image=np.zeros((8, 6, 3), np.uint8))
    stage(ctx)
    assert PhotoBackend.seen == [(8, 6, 3)] and ctx.image_densepose.shape == (8, 6, 3)
    assert ctx.producers["image_densepose"].note == "parts from the photo (test back-end)"
    assert DensePoseStage(BackendChoice("densepose-approx-parse")).reads == ("parse", "pose")


# ------------------------------------------------------------------------------------------------ device, batches


def _photos(wh: tuple[int, int]) -> list[np.ndarray]:
    from PIL import Image

    names = ("00034_00.jpg", "00035_00.jpg", "00121_00.jpg")
    return [np.asarray(Image.open(ROOT / "data/samples/person" / n).convert("RGB").resize(wh, Image.BILINEAR))
            for n in names]


def test_cpu_device_gives_the_parity_output(weights_file, fixture):
    """``device: cpu`` is the path the parity fixture was checked on: same boxes, scores and parts as the default."""
    from vitonprep.backends.densepose_rcnn import DensePoseRCNNBackend, DensePoseRCNNSettings

    s = FIXTURE_SETTINGS
    backend = DensePoseRCNNBackend(DensePoseRCNNSettings(min_size=s["min_size"], max_size=s["max_size"],
                                                         score_thresh=s["score_thresh"], dtype="float64",
                                                         device="cpu"), weights_file)
    result = backend.predict(fixture["image_rgb"])
    assert str(backend.device) == "cpu" and backend.device_note == ""
    np.testing.assert_allclose(result.boxes, fixture["final_boxes"], rtol=0, atol=1e-4)
    assert np.mean(result.parts != fixture["parts"]) <= 0.001


@pytest.mark.slow  # ~12 s on an idle 2-core machine, 35 s when shared
def test_batched_predictions_equal_single_ones(weights_file):
    """Three photos of one size share one backbone pass; each result equals its own single-photo call: part maps
    exactly, boxes, scores and U/V to float32 rounding (a batched convolution may sum in another order; in float64
    they were bit-identical, which takes 3x longer here). Score >= 0.9 keeps the test short (the DensePose head
    costs ~30 GFLOP per person): 0, 1 and 2 persons, so a per-photo failure is covered too."""
    from vitonprep.backends.densepose_rcnn import DensePoseRCNNBackend, DensePoseRCNNSettings

    s = FIXTURE_SETTINGS
    backend = DensePoseRCNNBackend(DensePoseRCNNSettings(min_size=s["min_size"], max_size=s["max_size"],
                                                         score_thresh=0.9, device="cpu"),
                                   weights_file)
    photos = _photos(tuple(s["photo_wh"]))
    batched = backend.predict_batch(photos)
    found = []
    for photo, got in zip(photos, batched, strict=True):
        try:
            want = backend.predict(photo)
        except InputError as exc:
            assert type(got) is type(exc) and str(got) == str(exc)
            found.append(0)
            continue
        found.append(len(want.boxes))
        np.testing.assert_array_equal(got.parts, want.parts)
        for name, atol in (("u", 1e-4), ("v", 1e-4), ("boxes", 1e-3), ("scores", 1e-5)):
            np.testing.assert_allclose(getattr(got, name), getattr(want, name), rtol=0, atol=atol, err_msg=name)
    assert found == [0, 1, 2]
