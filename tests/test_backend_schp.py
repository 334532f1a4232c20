"""SCHP port (vitonprep.backends.parsing_schp) against the original Self-Correction-Human-Parsing code.

Fixtures (tests/fixtures/parity/README.md): ``schp_lip.npz`` / ``schp_atr.npz`` were made by running the ORIGINAL
code of GoGoDuck912/Self-Correction-Human-Parsing at commit eb84c43 (``networks/AugmentCE2P.py`` ResNet with
Bottleneck blocks ``[1, 2, 2, 2]`` -- the official nets are ``[3, 4, 23, 3]``, reduced so the test runs in seconds;
the blocks, PSP, edge, decoder and fusion heads are the same code --, ``SimpleFolderDataset``'s centre/scale,
``get_affine_transform``, torchvision ToTensor + Normalize, ``transform_logits`` and the argmax of
``simple_extractor.py``) in float64 on CPU with one thread, with the repository's own InPlaceABN CPU kernel
(``modules/src/inplace_abn_cpu.cpp``) compiled for CPU in a scratch folder, on a 40x56 (LIP) / 60x48 (ATR)
synthetic BGR image at network input 64x64. Weights: ``random_state_dict`` below with seed 6 (LIP, 20 classes)
/ 4321 (ATR, 18 classes), in the original's state_dict key order. ``schp_keys.json`` is the original model's
key/shape list (``module.`` prefix, as in ``exp-schp-*.pth``) for ResNet-101 and for the reduced depth.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from vitonprep.backends import parsing_schp as schp  # noqa: E402
from vitonprep.backends import parsing_schp_net as schp_net  # noqa: E402
from vitonprep.backends.protocols import Backend  # noqa: E402
from vitonprep.errors import InputError  # noqa: E402

FIX = Path(__file__).parent / "fixtures" / "parity"
CLASS_KEYS = ("decoder.conv4.weight", "decoder.conv4.bias", "fushion.3.weight", "fushion.3.bias")


def random_state_dict(keys_shapes, seed):
    """Seeded random SCHP weights (float64) in the given key order; identical to the fixture script's function.

    Calibrated so that activations stay bounded through the net: He-scaled convs, BN scales of both signs
    (InPlaceABN uses |w| + eps, so negative scales test that quirk), running variances in [0.5, 1.5).
    """
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for key, shape in keys_shapes:
        shape = tuple(shape)
        if key.endswith("running_var"):
            v = 0.5 + torch.rand(shape, generator=g, dtype=torch.float64)
        elif key.endswith("running_mean"):
            v = 0.1 * torch.randn(shape, generator=g, dtype=torch.float64)
        elif len(shape) == 1 and key.endswith("weight"):
            mag = 0.5 + torch.rand(shape, generator=g, dtype=torch.float64)
            sign = torch.where(torch.rand(shape, generator=g, dtype=torch.float64) < 0.25, -1.0, 1.0)
            v = mag * sign
        elif len(shape) == 1:
            v = 0.1 * torch.randn(shape, generator=g, dtype=torch.float64)
        else:
            fan_in = int(np.prod(shape[1:]))
            v = torch.randn(shape, generator=g, dtype=torch.float64) * (2.0 / fan_in) ** 0.5
        sd[key] = v
    return sd


def official_keys(depth: str, num_classes: int = 20):
    """The original model's (key, shape) list, with the class-dependent heads resized to ``num_classes``."""
    keys = json.loads((FIX / "schp_keys.json").read_text())[depth]
    out = []
    for k, shape in keys:
        if k[len("module."):] in CLASS_KEYS:
            shape = [num_classes] + shape[1:]
        out.append((k, shape))
    return out


def write_pth(path: Path, sd: dict) -> Path:
    torch.save({"state_dict": sd, "cycle_n": 4}, path)  # what SCHP's train.py saves in exp-schp-*.pth
    return path


@pytest.fixture(scope="module", params=["lip", "atr"])
def case(request, tmp_path_factory):
    ds = request.param
    fx = dict(np.load(FIX / f"schp_{ds}.npz"))
    ncls = int(fx["num_classes"])
    sd = random_state_dict(official_keys("tiny", ncls), int(fx["seed"]))
    path = write_pth(tmp_path_factory.mktemp(ds) / f"exp-schp-test-{ds}.pth", sd)
    return ds, fx, path, {}


def _parser(case, dtype):
    ds, fx, path, cache = case
    if dtype not in cache:  # one load per model and dtype
        cache[dtype] = schp.SCHPParser(ds, path, input_size=tuple(int(v) for v in fx["input_size"]),
                                       layers=tuple(int(v) for v in fx["layers"]), dtype=dtype).setup()
    return cache[dtype]


def test_float64_parity_with_original(case):
    ds, fx, path, _ = case
    size = tuple(int(v) for v in fx["input_size"])
    parser = _parser(case, "float64")
    bgr = fx["image_bgr"]
    # preprocessing: bit-identical float32 network input
    x = schp.preprocess(bgr, size)
    np.testing.assert_array_equal(x, fx["net_input"])
    parser.setup()
    for name, rel in _head_differences(parser._model, fx).items():
        # measured 0 (bit for bit); the old Python 0.01 slope gives ~7e-10 (test_float_slope_is_what_matches)
        assert rel < 1e-12, f"{ds} {name}: max relative difference {rel:.3g}"
    # whole pipeline: image-space logits and labels
    logits = parser.logits(np.ascontiguousarray(bgr[:, :, ::-1]))
    assert logits.shape == fx["logits"].shape
    rel = np.abs(logits - fx["logits"]).max() / np.abs(fx["logits"]).max()
    assert rel < 1e-12, f"{ds} logits: max relative difference {rel:.3g}"
    labels = parser(np.ascontiguousarray(bgr[:, :, ::-1]))
    np.testing.assert_array_equal(labels, fx["labels"])
    assert len(np.unique(fx["labels"])) >= 3  # the fixture exercises several classes, not a constant map


def _head_differences(model, fx) -> dict[str, float]:
    """Max relative difference of the float64 model's (parsing, fusion, edge) on the fixture input."""
    with torch.no_grad():
        outs = [t.numpy() for t in model(torch.from_numpy(fx["net_input"]).double())]
    return {name: float(np.abs(ours - fx[name]).max() / np.abs(fx[name]).max())
            for name, ours in zip(("parsing", "fusion", "edge"), outs, strict=True)}


def test_float_slope_is_what_matches(case):
    """InPlaceABN's kernel takes its leaky-ReLU slope as a C++ float: the fixture, made with the compiled original
    kernel, tells the float32-rounded slope (exact) from Python's 0.01 (off by ~1e-7 absolute, ~7e-10 relative)."""
    ds, fx, path, _ = case
    assert schp_net.ABN_SLOPE == float(np.float32(0.01)) != 0.01
    model = _parser(case, "float64")._model
    abns = [m for m in model.modules() if isinstance(m, schp_net.ABN) and m.activation == "leaky_relu"]
    assert abns and all(m.slope == schp_net.ABN_SLOPE for m in abns)
    try:
        for m in abns:
            m.slope = 0.01
        worst = max(_head_differences(model, fx).values())
    finally:
        for m in abns:
            m.slope = schp_net.ABN_SLOPE
    assert worst > 1e-10, f"{ds}: the 0.01 slope should miss the compiled kernel's outputs, got {worst:.3g}"


def test_float32_labels_match(case):
    ds, fx, path, _ = case
    parser = _parser(case, "float32")
    labels = parser(np.ascontiguousarray(fx["image_bgr"][:, :, ::-1]))
    differing = float((labels != fx["labels_float32"]).mean())
    assert differing <= 0.001, f"{ds}: {differing:.4%} of pixels differ in float32"
    # float32 head outputs against the original's float64 run: measured ~4e-6 relative
    with torch.no_grad():
        fusion = parser._model(torch.from_numpy(fx["net_input"]))[1].double().numpy()
    rel = np.abs(fusion - fx["fusion"]).max() / np.abs(fx["fusion"]).max()
    assert rel < 1e-4, f"{ds}: float32 fusion logits differ by {rel:.3g} relative from the float64 original"


def test_port_has_the_official_keys_and_shapes():
    for ncls in (20, 18, 7):
        with torch.device("meta"):
            net = schp_net.schp_net(ncls)
        ours = [("module." + k, list(v.shape)) for k, v in net.state_dict().items()]
        assert ours == [(k, list(s)) for k, s in official_keys("resnet101", ncls)]


def _expanded_official_file(path: Path, num_classes: int, drop: str = "", reshape: str = "") -> Path:
    # zero-stride tensors: the file has every official key and shape but stores one number per tensor
    sd = {}
    for k, shape in official_keys("resnet101", num_classes):
        if k == drop:
            continue
        if k == reshape:
            shape = [shape[0] + 1] + shape[1:]
        fan_in = int(np.prod(shape[1:])) if len(shape) == 4 else 0
        value = 1.0 / fan_in if fan_in else (0.0 if k.endswith(("bias", "running_mean")) else 1.0)
        sd[k] = torch.full((), value).expand(*shape)
    return write_pth(path, sd)


def test_loads_full_size_official_layout_file(tmp_path):
    path = _expanded_official_file(tmp_path / schp.WEIGHTS_ATR.filename, 18)
    parser = schp.SCHPParser("atr", path, input_size=(64, 64))
    labels = parser(np.full((40, 30, 3), 128, np.uint8))
    assert labels.shape == (40, 30) and labels.dtype == np.uint8
    assert np.isfinite(parser.logits(np.full((40, 30, 3), 128, np.uint8))).all()


def test_refuses_missing_or_misshapen_key(tmp_path):
    key = "module.layer3.5.bn2.running_var"
    path = _expanded_official_file(tmp_path / "missing.pth", 20, drop=key)
    with pytest.raises(ValueError, match="layer3.5.bn2.running_var"):
        schp_net.load_schp(path, 20)
    key = "module.decoder.conv4.weight"
    path = _expanded_official_file(tmp_path / "shape.pth", 20, reshape=key)
    with pytest.raises(ValueError, match=r"decoder\.conv4\.weight.*\(21, 256, 1, 1\)"):
        schp_net.load_schp(path, 20)


class _NotATensor:
    pass


def test_refuses_pickled_objects(tmp_path):
    import pickle

    path = tmp_path / "evil.pth"
    # an object weights_only must refuse (a class that is not a tensor or a plain container)
    torch.save({"state_dict": {}, "x": _NotATensor()}, path)
    with pytest.raises(pickle.UnpicklingError):
        schp_net.read_schp_state_dict(path)


def test_lip_atr_to_cihp():
    lip = np.array([[13, 13, 2], [10, 5, 0]], np.uint8)
    atr = np.array([[11, 11, 11], [11, 4, 0]], np.uint8)
    # (0,2): ATR face, LIP hair -> stays hair; (1,0): ATR face, LIP jumpsuit -> neck; jumpsuit elsewhere -> dress
    out = schp.lip_atr_to_cihp(lip, atr)
    np.testing.assert_array_equal(out, [[13, 13, 2], [10, 5, 0]])
    lip2 = np.array([[10, 13]], np.uint8)
    atr2 = np.array([[4, 11]], np.uint8)
    np.testing.assert_array_equal(schp.lip_atr_to_cihp(lip2, atr2), [[6, 13]])


def test_cihp_backend_finds_weights_or_names_them(tmp_path, monkeypatch):
    from vitonprep.weights import MissingWeightsError

    monkeypatch.delenv("VITONPREP_WEIGHTS_DIR", raising=False)
    with pytest.raises(MissingWeightsError, match=r"exp-schp-201908261155-lip\.pth.*drive\.google|"
                                                  r"exp-schp-201908261155-lip\.pth.*Self-Correction"):
        schp.SCHPCIHPParser(schp.SCHPParsingConfig(), weights_dir=tmp_path)
    for ds in ("lip", "atr"):
        _expanded_official_file(tmp_path / schp.TORCH_WEIGHTS[ds].filename, schp.DATASETS[ds].num_classes)
    backend = schp.SCHPCIHPParser(schp.SCHPParsingConfig(), weights_dir=tmp_path)
    assert backend.lip.weights.name == schp.WEIGHTS_LIP.filename
    backend.lip.input_size = backend.atr.input_size = (64, 64)  # full-size nets, tiny inputs: seconds, not minutes
    labels = backend(np.full((24, 18, 3), 90, np.uint8))
    assert labels.shape == (24, 18) and labels.max() <= 19
    # the batch call: a bad sample gets its per-sample InputError in its place, the others their labels
    out = backend.call_batch([np.full((24, 18, 3), 90, np.uint8), np.zeros((24, 18), np.uint8)],
                             [None, None], ["upper_body", "upper_body"])
    np.testing.assert_array_equal(out[0], labels)
    assert isinstance(out[1], InputError) and "RGB" in str(out[1])
    with pytest.raises(InputError):
        backend(np.zeros((24, 18, 4), np.uint8))


def test_backend_class_on_the_protocol():
    cls = schp.SCHPCIHPParser
    assert (cls.NAME, cls.KIND, cls.APPROXIMATE, cls.Config) == ("parsing-schp", "parsing", False,
                                                                 schp.SCHPParsingConfig)
    assert set(cls.WEIGHT_FILES) == {schp.WEIGHTS_LIP.filename, schp.WEIGHTS_ATR.filename,
                                     schp.WEIGHTS_PASCAL.filename, "parsing_lip.onnx", "parsing_atr.onnx"}
    assert "MIT" in cls.LICENCE and issubclass(cls, Backend)
    assert all(hasattr(cls, name) for name in ("__call__", "call_batch", "setup", "close", "device_note"))
    with pytest.raises(ValueError, match="runtime"):  # a configuration error, raised when the params are read
        schp.SCHPParsingConfig(runtime="tensorrt")


def test_onnx_runtime_matches_torch(tmp_path):
    """The ONNX path (IDM-VTON's parsing_*.onnx through onnxruntime) on an export of the port itself.

    IDM-VTON's files are the same network exported with outputs [parsing, fusion, edge]; we export our port
    (reduced depth, seeded random weights, float32) the same way with torch's TorchScript exporter and check that
    onnxruntime gives the torch logits and labels. Input 96x96 so that the PSP pools (1, 2, 3, 6) divide the 6x6
    feature map, which the exporter requires.
    """
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")  # torch's exporter needs it (not a run-time dependency of the ONNX path)
    size = (96, 96)
    sd = random_state_dict(official_keys("tiny", 18), 99)
    pth = write_pth(tmp_path / "atr.pth", {k: v.float() for k, v in sd.items()})
    torch_parser = schp.SCHPParser("atr", pth, input_size=size, layers=(1, 2, 2, 2)).setup()
    onnx_path = tmp_path / "parsing_atr.onnx"
    with pytest.warns(DeprecationWarning):
        torch.onnx.export(torch_parser._model, (torch.zeros(1, 3, *size),), str(onnx_path), dynamo=False,
                          input_names=["input.1"], opset_version=17)
    onnx_parser = schp.SCHPParser("atr", onnx_path, input_size=size, threads=1)
    assert onnx_parser.runtime == "onnx"
    rgb = np.ascontiguousarray(dict(np.load(FIX / "schp_atr.npz"))["image_bgr"][:, :, ::-1])
    a, b = torch_parser.logits(rgb), onnx_parser.logits(rgb)
    assert np.abs(a - b).max() <= 1e-4 * np.abs(a).max()
    assert (np.argmax(a, 2) != np.argmax(b, 2)).mean() <= 0.001


def _photos(hw) -> list[np.ndarray]:
    from PIL import Image

    root = Path(__file__).resolve().parents[1] / "data" / "samples" / "person"
    return [np.asarray(Image.open(root / n).convert("RGB").resize((hw[1], hw[0]), Image.BILINEAR))
            for n in ("00035_00.jpg", "00121_00.jpg")]


def test_cpu_device_and_batches_give_the_parity_labels(case):
    """``device: cpu`` reproduces the original's labels; a batch (the fixture image plus two other photos of other
    sizes) gives each image its single-image labels exactly and its logits to 1e-9 relative (the CPU convolution
    kernels block a batch differently, so float64 sums round differently in the last bits)."""
    ds, fx, path, _ = case
    parser = schp.SCHPParser(ds, path, input_size=tuple(int(v) for v in fx["input_size"]),
                             layers=tuple(int(v) for v in fx["layers"]), dtype="float64", device="cpu").setup()
    rgb = np.ascontiguousarray(fx["image_bgr"][:, :, ::-1])
    np.testing.assert_array_equal(parser(rgb), fx["labels"])
    images = [rgb, *_photos((96, 72))]
    batched = parser.call_batch(images)
    for img, got in zip(images, batched, strict=True):
        np.testing.assert_array_equal(got, parser(img))
    logits = parser.logits_batch(images)
    for img, got in zip(images, logits, strict=True):
        want = parser.logits(img)
        assert np.abs(got - want).max() <= 1e-9 * np.abs(want).max()
