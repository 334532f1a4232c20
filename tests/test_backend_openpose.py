"""OpenPose body port (vitonprep.backends.pose_openpose) against the original pytorch-openpose code.

Fixture (tests/fixtures/parity/README.md): ``openpose_body.npz`` was made by running the ORIGINAL
Hzzone/pytorch-openpose code at commit 5ee71dc (``src/body.py`` ``Body`` + ``src/model.py`` ``bodypose_model``,
weights loaded from a ``body_pose_model.pth``-layout file through its own ``util.transfer``) on CPU with one thread,
once in float64 and once in float32. Two local constants of ``Body.__call__`` were made module-level in a /tmp copy
so they could be set: ``boxsize`` = 128 (instead of 368: the net input is 64x56 instead of ~184 px high, so the
full-size net runs in seconds) and the input dtype (``.float()`` -> float64 for the float64 run). Input: an 80x62
synthetic BGR image. Weights: ``random_state_dict`` below, seed 7, final-layer bias shifts
``{"Mconv7_stage6_L2.bias": 0.4, "Mconv7_stage6_L1.bias": 0.3}`` (so that random weights give heat-map peaks above
0.1 and persons that survive the 4-part / 0.4-score filter: 149 candidates, 9 persons), keys in the order of
``openpose_keys.json`` (the original model's state_dict order, caffe layer names as in the file).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from vitonprep.backends import pose_openpose as op  # noqa: E402
from vitonprep.backends.protocols import Backend  # noqa: E402
from vitonprep.errors import InputError, NoPersonError  # noqa: E402

FIX = Path(__file__).parent / "fixtures" / "parity"


def random_state_dict(keys_shapes, seed, bias_shift):
    """Seeded random body weights (float32, He-scaled convs, small biases); identical to the fixture script's."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for key, shape in keys_shapes:
        shape = tuple(shape)
        if len(shape) == 1:
            sd[key] = 0.05 * torch.randn(shape, generator=g, dtype=torch.float32) + bias_shift.get(key, 0.0)
        else:
            fan_in = int(np.prod(shape[1:]))
            sd[key] = torch.randn(shape, generator=g, dtype=torch.float32) * (2.0 / fan_in) ** 0.5
    return sd


def official_keys():
    return [(k, s) for k, s in json.loads((FIX / "openpose_keys.json").read_text())["keys"]]


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    fx = dict(np.load(FIX / "openpose_body.npz"))
    sd = random_state_dict(official_keys(), int(fx["seed"]), json.loads(str(fx["bias_shift"])))
    path = tmp_path_factory.mktemp("openpose") / "body_pose_model.pth"
    torch.save(sd, path)
    cfg64 = op.OpenPoseConfig(boxsize=int(fx["boxsize"]), dtype="float64")
    cfg32 = op.OpenPoseConfig(boxsize=int(fx["boxsize"]))
    return fx, op.OpenPoseBody(cfg64, weights_path=path), op.OpenPoseBody(cfg32, weights_path=path)


def test_float64_parity_with_original(case):
    fx, body64, _ = case
    body64.setup()
    with torch.no_grad():
        paf, heat = body64._model(torch.from_numpy(fx["net_input"]).double())
    for name, ours in (("paf", paf.numpy()), ("heat", heat.numpy())):
        rel = np.abs(ours - fx[name]).max() / np.abs(fx[name]).max()
        assert rel < 1e-9, f"{name}: max relative difference {rel:.3g}"
    candidate, subset = body64.detect(fx["image_bgr"])
    ref_c, ref_s = fx["candidate"], fx["subset"]
    assert candidate.shape == ref_c.shape and subset.shape == ref_s.shape
    np.testing.assert_array_equal(candidate[:, [0, 1, 3]], ref_c[:, [0, 1, 3]])  # peak positions and ids
    np.testing.assert_allclose(candidate[:, 2], ref_c[:, 2], rtol=1e-9)
    np.testing.assert_array_equal(subset[:, :18], ref_s[:, :18])  # the persons' joints
    np.testing.assert_allclose(subset[:, 18:], ref_s[:, 18:], rtol=1e-9)
    assert len(ref_s) >= 2 and (ref_s[:, -1] >= 10).any()  # the fixture has several, partly full, skeletons


def test_float32_discrete_outputs_match(case):
    fx, _, body32 = case
    candidate, subset = body32.detect(fx["image_bgr"])
    np.testing.assert_array_equal(candidate[:, [0, 1, 3]], fx["candidate_float32"][:, [0, 1, 3]])
    np.testing.assert_array_equal(subset[:, :18], fx["subset_float32"][:, :18])
    assert np.abs(candidate[:, 2] - fx["candidate_float32"][:, 2]).max() < 1e-5


def test_main_person_as_body25(case):
    fx, _, body32 = case
    result = body32(np.ascontiguousarray(fx["image_bgr"][:, :, ::-1]))
    pose = result.keypoints.pose
    ref_c, ref_s = fx["candidate_float32"], fx["subset_float32"]
    best = max(range(len(ref_s)), key=lambda i: (ref_s[i][-1], ref_s[i][-2]))
    coco_to_body25 = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)
    for coco, b25 in enumerate(coco_to_body25):
        idx = int(ref_s[best][coco])
        if idx < 0:
            assert (pose[b25] == 0).all()
        else:
            np.testing.assert_array_equal(pose[b25, :2], ref_c[idx, :2])
            assert abs(pose[b25, 2] - ref_c[idx, 2]) < 1e-5  # float32 score vs the original's float32 run
    assert (pose[19:] == 0).all()  # no feet in COCO-18


def test_no_person_is_an_error(case):
    fx, body64, _ = case
    strict = op.OpenPoseBody(op.OpenPoseConfig(boxsize=int(fx["boxsize"]), thre1=1e9), weights_path=body64.weights)
    rgb = np.ascontiguousarray(fx["image_bgr"][:, :, ::-1])
    with pytest.raises(NoPersonError):
        strict(rgb)
    assert isinstance(strict.call_batch([rgb])[0], NoPersonError)  # a per-sample error, in its place


def test_port_has_the_official_keys_and_shapes():
    with torch.device("meta"):
        net = op.body_net()
    ours = {k.split(".", 1)[1]: list(v.shape) for k, v in net.state_dict().items()}
    assert ours == dict(official_keys())
    # the final heat-map layer keeps pytorch-openpose's ReLU, the PAF layer and earlier outputs do not
    assert hasattr(net.model6_2, "relu_Mconv7_stage6_L2") and not hasattr(net.model6_1, "relu_Mconv7_stage6_L1")
    assert not hasattr(net.model5_2, "relu_Mconv7_stage5_L2")


def _expanded(path, drop="", reshape=""):
    sd = {}
    for k, shape in official_keys():
        if k == drop:
            continue
        if k == reshape:
            shape = [shape[0] + 1] + shape[1:]
        sd[k] = torch.zeros(()).expand(*shape)
    torch.save(sd, path)
    return path


def test_refuses_missing_or_misshapen_key(tmp_path):
    with pytest.raises(ValueError, match="Mconv3_stage4_L2.weight"):
        op.load_body_net(_expanded(tmp_path / "a.pth", drop="Mconv3_stage4_L2.weight"))
    with pytest.raises(ValueError, match=r"conv4_2\.bias.*\(513,\)"):
        op.load_body_net(_expanded(tmp_path / "b.pth", reshape="conv4_2.bias"))
    assert op.load_body_net(_expanded(tmp_path / "c.pth")) is not None


def test_missing_weights_are_named(tmp_path, monkeypatch):
    from vitonprep.weights import MissingWeightsError

    monkeypatch.delenv("VITONPREP_WEIGHTS_DIR", raising=False)
    with pytest.raises(MissingWeightsError, match=r"body_pose_model\.pth.*pytorch-openpose"):
        op.OpenPoseBody(op.OpenPoseConfig(), weights_dir=tmp_path)


def test_cpu_device_and_batches_give_the_parity_detections(case):
    """``device: cpu`` finds the original's peaks and skeletons; a batch of photos of one size gives each photo
    exactly its single-photo result (float64: batch members are computed independently)."""
    from PIL import Image

    fx, body64, _ = case
    cpu = op.OpenPoseBody(op.OpenPoseConfig(boxsize=int(fx["boxsize"]), dtype="float64", device="cpu"),
                          weights_path=body64.weights)
    candidate, subset = cpu.detect(fx["image_bgr"])
    np.testing.assert_array_equal(candidate[:, [0, 1, 3]], fx["candidate"][:, [0, 1, 3]])
    np.testing.assert_array_equal(subset[:, :18], fx["subset"][:, :18])
    h, w = fx["image_bgr"].shape[:2]
    root = Path(__file__).resolve().parents[1] / "data" / "samples" / "person"
    others = [np.asarray(Image.open(root / n).convert("RGB").resize((w, h), Image.BILINEAR))
              for n in ("00035_00.jpg", "00121_00.jpg")]
    images = [np.ascontiguousarray(fx["image_bgr"][:, :, ::-1]), *others]
    maps = cpu.maps_batch([np.ascontiguousarray(i[:, :, ::-1]) for i in images])  # one forward for the three
    for (heat_b, paf_b), img in zip(maps, images, strict=True):
        heat, paf = cpu.maps(np.ascontiguousarray(img[:, :, ::-1]))
        np.testing.assert_array_equal(heat_b, heat)
        np.testing.assert_array_equal(paf_b, paf)
    # the skeletons assembled from the batched maps: the fixture photo's main person, as a single call gives it
    got = cpu.call_batch(images[:1] + [np.zeros((4, 4), np.uint8)])
    np.testing.assert_array_equal(got[0].keypoints.pose, cpu(images[0]).keypoints.pose)
    assert isinstance(got[1], InputError)  # a bad input fails alone, as a per-sample error
    with pytest.raises(InputError, match="RGB"):
        cpu(np.zeros((4, 4), np.uint8))


def test_backend_class_on_the_protocol():
    cls = op.OpenPoseBody
    assert (cls.NAME, cls.KIND, cls.APPROXIMATE, cls.Config) == ("pose-openpose-body", "pose", False,
                                                                 op.OpenPoseConfig)
    assert cls.WEIGHT_FILES == ("body_pose_model.pth",) and "CMU" in cls.LICENCE and issubclass(cls, Backend)
    with pytest.raises(ValueError, match="dtype"):  # a configuration error, raised when the params are read
        op.OpenPoseConfig(dtype="float16")
