"""Reference back-ends on a device (issue 20, item 2): the ``device`` setting, tensors made on the input's device,
the ONNX provider choice, and batches through the stage protocol (one back-end call per Ray stage-actor call).

No GPU is needed: the ports run on the meta device (shapes only, no data), where a tensor created on the CPU
beside meta weights is a device error, exactly as it would be beside CUDA weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vitonprep.backends import devices
from vitonprep.backends.densepose_approx import ApproxDensePose
from vitonprep.backends.protocols import Backend
from vitonprep.errors import ConfigError, InputError
from vitonprep.raw import RawItem
from vitonprep.stages import SampleContext

META = torch.device("meta")
DATA = Path(__file__).resolve().parents[1] / "data" / "samples"


# ------------------------------------------------------------------------------------------------ the setting


def test_device_setting_is_checked_when_the_pipeline_is_read():
    from vitonprep.backends.registry import make_backend
    from vitonprep.config import BackendChoice

    for ok in ("auto", "cpu", "cuda", "cuda:1", "meta"):
        assert devices.check_device(ok) == ok
    for bad in ("gpu", "cuda:", "CPU", "", 0):
        with pytest.raises(TypeError):
            devices.check_device(bad)
    # through the registry: a params error naming the YAML path, before any weight file is looked for
    with pytest.raises(ConfigError, match=r"stages\.densepose\.params \(densepose-rcnn-r50-fpn\): device must be"):
        make_backend("densepose", BackendChoice("densepose-rcnn-r50-fpn", {"device": "gpu"}))


def test_auto_resolves_where_it_runs(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert devices.resolve_device("auto") == torch.device("cuda")
    assert devices.resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices.resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ConfigError, match="no CUDA device"):
        devices.resolve_device("cuda:0")
    assert devices.device_note(torch.device("cpu")) == ""  # CPU-built samples keep their meta.json
    assert devices.device_note(torch.device("cuda", 0)) == "computed on cuda:0"


def test_onnx_uses_the_cuda_provider_only_when_present_and_asked_for(monkeypatch, caplog):
    import onnxruntime as ort

    cuda = ("CUDAExecutionProvider", {"device_id": 0})
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert devices.onnx_providers("cuda") == [cuda, "CPUExecutionProvider"]
    assert devices.onnx_providers("cuda:1")[0] == ("CUDAExecutionProvider", {"device_id": 1})
    assert devices.onnx_providers("cpu") == ["CPUExecutionProvider"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert devices.onnx_providers("auto") == [cuda, "CPUExecutionProvider"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices.onnx_providers("auto") == ["CPUExecutionProvider"]
    # CUDA asked for, but a CPU-only onnxruntime: the CPU, said in the log
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with caplog.at_level("WARNING"):
        assert devices.onnx_providers("cuda") == ["CPUExecutionProvider"]
    assert "CUDAExecutionProvider" in caplog.text


def test_schp_onnx_session_gets_the_chosen_providers(monkeypatch, tmp_path):
    import onnxruntime as ort

    from vitonprep.backends.parsing_schp import SCHPParser

    seen = {}

    class Session:
        def __init__(self, path, opts, providers):
            seen["providers"] = providers

        def get_providers(self):
            return [p if isinstance(p, str) else p[0] for p in seen["providers"]]

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", Session)
    parser = SCHPParser("lip", tmp_path / "parsing_lip.onnx", device="cuda").setup()
    assert seen["providers"][0] == ("CUDAExecutionProvider", {"device_id": 0}) and parser.device == "cuda"
    parser = SCHPParser("lip", tmp_path / "parsing_lip.onnx", device="cpu").setup()
    assert seen["providers"] == ["CPUExecutionProvider"] and parser.device == "cpu"


# ------------------------------------------------------------------------------------------------ meta device


def _nms_shapes_only(boxes, scores, idxs, thresh):
    """torchvision's NMS cannot run on meta tensors (its output size depends on the data): check what NMS checks
    - that boxes, scores and group ids live on one device - and keep every box."""
    assert boxes.device == scores.device == idxs.device, (boxes.device, scores.device, idxs.device)
    return torch.arange(len(boxes), device=boxes.device)


def test_densepose_port_runs_on_the_meta_device(monkeypatch):
    """Weights and inputs on meta; before the fix the forward built its mean/std, anchors, ROI buffers and NMS
    group ids on the CPU and failed ("Tensor on device cpu is not on the expected device meta")."""
    import torch.fx.experimental._config as fx_config

    from vitonprep.backends import densepose_rcnn_model as m

    monkeypatch.setattr(m, "batched_nms", _nms_shapes_only)
    # boolean masks on meta tensors: assume every element is kept (shape checks only)
    with fx_config.patch(meta_nonzero_assume_all_nonzero=True):
        _densepose_on_meta(m)


def _densepose_on_meta(m) -> None:
    with torch.device("meta"):
        model = m.DensePoseRCNN().eval()
    assert next(model.parameters()).device == META
    images = torch.empty((2, 3, 96, 128), device=META)
    for det, out in model.forward_batch(images):
        n = len(det.boxes)
        assert det.boxes.device == META and det.boxes.shape == (n, 4) and 0 < n <= 100
        assert out.coarse_segm.shape == (n, 2, 112, 112) and out.u.shape == (n, 25, 112, 112)
    det, out = model(images[0])
    assert out.fine_segm.device == META


def test_schp_runs_on_the_meta_device():
    from vitonprep.backends import parsing_schp as schp

    with torch.device("meta"):
        net = schp.schp_net(20).eval()
    parser = schp.SCHPParser("lip", "unused.pth", device="meta")
    parser._model, parser.device = net, META  # what setup() leaves, without reading a file
    rgbs = [np.zeros((64, 48, 3), np.uint8), np.zeros((80, 40, 3), np.uint8)]
    x = np.concatenate([schp.preprocess(r, parser.input_size) for r in rgbs])  # numpy, as the back-end makes it
    fusion = parser.fusion_logits(x)
    assert fusion.device == META and fusion.shape == (2, 20, 119, 119)


def test_openpose_runs_on_the_meta_device():
    from vitonprep.backends import pose_openpose as op

    with torch.device("meta"):
        net = op.body_net().eval()
    body = op.OpenPoseBody(op.OpenPoseConfig(device="meta"), weights_path="unused.pth")
    body._model, body.device = net, META  # what setup() leaves, without reading a file
    paf, heat = body.forward(np.zeros((2, 3, 184, 136), np.float32))
    assert paf.device == META and paf.shape == (2, 38, 23, 17) and heat.shape == (2, 19, 23, 17)


def test_sam_runs_on_the_meta_device():
    pytest.importorskip("segment_anything")
    import torch.fx.experimental._config as fx_config
    from segment_anything import SamPredictor
    from segment_anything.build_sam import _build_sam

    from vitonprep.backends import cloth_mask_sam as sam

    # built on the CPU, then moved (segment-anything makes its pixel mean/std with the legacy torch.Tensor(list),
    # which ignores a device context)
    model = _build_sam(encoder_embed_dim=32, encoder_depth=2, encoder_num_heads=2,
                       encoder_global_attn_indexes=[1]).eval().to(META)
    backend = sam.SAMClothMask(sam.SAMClothMaskConfig(device="meta"), weights_path="unused.pth")
    backend._predictor, backend.device = SamPredictor(model), META
    rgbs = [np.zeros((128, 96, 3), np.uint8), np.zeros((100, 100, 3), np.uint8)]
    features = backend.embed(rgbs)
    assert features.device == META and features.shape == (2, 256, 64, 64)
    # the prompt decoder on one image's embedding, as predict_batch runs it
    p = backend._predictor
    p.reset_image()
    p.original_size, p.input_size, p.features, p.is_image_set = (128, 96), (1024, 768), features[:1], True
    # the prompt encoder masks by label: on meta tensors, assume every element is kept (shape checks only)
    with torch.inference_mode(), fx_config.patch(meta_nonzero_assume_all_nonzero=True):
        masks, _, _ = p.predict_torch(torch.zeros((1, 1, 2), device=META), torch.ones((1, 1), device=META),
                                           torch.zeros((1, 4), device=META), multimask_output=False)
    assert masks.device == META and masks.shape == (1, 1, 128, 96)


# ------------------------------------------------------------------------------------------------ batches


class _Counting(Backend):
    """The pose back-end with a ``call_batch`` that counts its calls (the mediapipe pose back-end has none)."""

    NAME, KIND, APPROXIMATE = "pose-mediapipe-blazepose", "pose", True

    def __init__(self, inner):
        self.inner, self.calls = inner, []

    def setup(self):
        self.inner.setup()

    def close(self):
        self.inner.close()

    def __call__(self, rgb):
        self.calls.append(1)
        return self.inner(rgb)

    def call_batch(self, rgbs):
        self.calls.append(len(rgbs))
        out = []
        for rgb in rgbs:
            try:
                out.append(self.inner(rgb))
            except InputError as exc:
                out.append(exc)
        return out


def _pose_contexts(n_photos: int) -> list[SampleContext]:
    from PIL import Image

    photos = sorted((DATA / "person").glob("*.jpg"))[:n_photos]
    ctxs = [SampleContext(RawItem(key=p.stem, person=str(p), cloth=None, root=str(DATA), pair="person_only"),
                          image=np.asarray(Image.open(p).convert("RGB").resize((384, 512)))) for p in photos]
    wall = RawItem(key="wall", person="wall.jpg", cloth=None, root=str(DATA), pair="person_only")
    ctxs.append(SampleContext(wall, image=np.full((512, 384, 3), 230, np.uint8)))
    return ctxs


def test_stage_calls_the_backend_once_per_batch():
    """`Stage.run_batch` (what a Ray stage actor runs on its batch) calls the back-end once; the results equal the
    per-sample path's, and a photo without a person comes back as its SampleError."""
    from vitonprep.config import BackendChoice
    from vitonprep.errors import SampleError
    from vitonprep.stages import PoseStage

    stage = PoseStage(BackendChoice("pose-mediapipe-blazepose"))
    stage.backend = _Counting(stage.backend)
    stage.setup()
    try:
        outs = stage.run_batch(_pose_contexts(3))
        assert stage.backend.calls == [4]
        assert isinstance(outs[3], SampleError) and outs[3].stage == "pose" and "no person" in outs[3].reason
        single = _pose_contexts(3)[:3]
        for ctx in single:
            stage(ctx)
        for got, want in zip(outs[:3], single, strict=True):
            np.testing.assert_array_equal(got.pose.keypoints.pose, want.pose.keypoints.pose)
            assert got.producers["pose"] == want.producers["pose"]
    finally:
        stage.close()


class _Approx(ApproxDensePose):
    """Counts its calls; the protocol base class's call_batch loops over them."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __call__(self, parse, pose):
        self.calls.append(1)
        if parse is None:
            raise InputError("no parse")
        return np.zeros(parse.shape, np.uint8)


def test_run_batch_without_call_batch_is_the_per_sample_loop():
    from vitonprep.config import BackendChoice
    from vitonprep.errors import SampleError
    from vitonprep.stages import DensePoseStage

    stage = DensePoseStage(BackendChoice("densepose-approx-parse"))
    stage.backend = _Approx()
    calls = stage.backend.calls
    item = RawItem(key="a", person="a.jpg", cloth=None, root=".", pair="person_only")
    ctxs = [SampleContext(item, parse=np.zeros((8, 6), np.uint8)), SampleContext(item, parse=None)]
    out = stage.run_batch(ctxs)
    assert calls == [1, 1] and out[0] is ctxs[0] and out[0].image_densepose.shape == (8, 6, 3)
    assert isinstance(out[1], SampleError) and out[1].stage == "densepose"


class _On(Backend):
    NAME, KIND = "pose-openpose-body", "pose"
    note_text, device_text = "", ""

    @property
    def note(self):
        return self.note_text

    @property
    def device_note(self):
        return self.device_text


def test_device_goes_to_the_producer_note_only_off_the_cpu():
    from vitonprep.assemble import Producer
    from vitonprep.backends.registry import producer_of

    on = _On()
    assert producer_of(on) == Producer("pose-openpose-body")
    on.note_text = "n"
    assert producer_of(on) == Producer("pose-openpose-body", note="n")
    on.note_text, on.device_text = "", "computed on cuda:0"
    assert producer_of(on).note == "computed on cuda:0"
    on.note_text = "DensePose R50"
    assert producer_of(on).note == "DensePose R50; computed on cuda:0"
