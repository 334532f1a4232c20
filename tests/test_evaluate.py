"""Metric sanity (a set against itself and against noise), weights handling and `vitontrain evaluate`.

The extractors run at random initialisation from weights files written here (the real files cannot be downloaded
on the test machine): same architectures and key layouts as the real InceptionV3 / AlexNet files.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vitontrain.evaluation import (
    EvalProtocol,
    InceptionFeatures,
    WeightsError,
    build_inception,
    build_lpips,
    default_lpips_linear_path,
    evaluate_run,
    fid_kid,
    real_person_images,
    ssim_lpips,
)

DATA = Path(__file__).resolve().parents[1] / "data"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, Path]:
    """Random-init weights files with the real files' key layouts (torch-fidelity InceptionV3 = torchvision's
    Inception3 keys with a 1008-way fc; LPIPS backbone = torchvision alexnet)."""
    import torchvision

    d = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    inc = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False)
    for m in inc.modules():
        if isinstance(m, torch.nn.Conv2d):
            # variance-preserving init, so random features stay finite through 40+ layers (BN is identity here)
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    sd = inc.state_dict()
    sd["fc.weight"] = torch.randn(1008, 2048) * 0.01
    sd["fc.bias"] = torch.zeros(1008)
    torch.save(sd, d / "inception.pth")
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), d / "alexnet.pth")
    return {"inception": d / "inception.pth", "alex": d / "alexnet.pth"}


@pytest.fixture(scope="module")
def nets(weights):
    return InceptionFeatures(build_inception(weights["inception"]), 8), build_lpips(weights["alex"])


def _photos(n: int = 6, size=(96, 128)) -> list[np.ndarray]:
    paths = sorted(DATA.glob("samples/*/*.jpg"))[:n]
    return [np.asarray(Image.open(p).convert("RGB").resize(size, Image.Resampling.BICUBIC)) for p in paths]


def test_metric_sanity_self_and_noise(nets):
    inception, lpips_net = nets
    imgs = _photos()
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 256, im.shape, dtype=np.uint8) for im in imgs]
    f_real, f_noise = inception(imgs), inception(noise)
    assert torch.isfinite(f_real).all() and f_real.std() > 0

    same = fid_kid(f_real, f_real)
    other = fid_kid(f_real, f_noise)
    assert abs(same["fid"]) < 1e-2
    assert other["fid"] > 10.0 and other["fid"] > 1000 * abs(same["fid"])
    # KID is an unbiased MMD estimate: for a set against itself it is ~0 up to an O(1/n) negative offset
    assert other["kid_mean"] > 10 * abs(same["kid_mean"])

    s_same = ssim_lpips(imgs, imgs, lpips_net)
    s_noise = ssim_lpips(noise, imgs, lpips_net)
    assert s_same["ssim"] == pytest.approx(1.0, abs=1e-9) and s_same["lpips"] == pytest.approx(0.0, abs=1e-7)
    assert s_noise["ssim"] < 0.2 and s_noise["lpips"] > 0.05


def test_lpips_backbone_is_the_users_file(weights, tmp_path):
    """The backbone comes from the file (two different files → different networks), never from a download."""
    import torchvision

    torch.manual_seed(1)
    other = tmp_path / "alex2.pth"
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), other)
    a, b = build_lpips(weights["alex"]), build_lpips(other)
    sd = torch.load(weights["alex"], weights_only=True)
    assert torch.equal(a.net.slice1[0].weight, sd["features.0.weight"])
    assert not torch.equal(a.net.slice1[0].weight, b.net.slice1[0].weight)


def test_missing_or_wrong_weights_are_clear_errors(weights, tmp_path):
    with pytest.raises(WeightsError, match="not found: .*nope.pth"):
        build_inception(tmp_path / "nope.pth")
    with pytest.raises(WeightsError, match="not found"):
        build_lpips(tmp_path / "nope.pth")
    with pytest.raises(WeightsError, match="do not fit"):
        build_inception(weights["alex"])
    with pytest.raises(WeightsError, match="features"):
        build_lpips(weights["inception"])
    with pytest.raises(WeightsError, match="--inception-weights"):
        EvalProtocol(lpips_backbone_weights=weights["alex"]).check_files()


def _fake_run(shards: Path, out: Path, size: tuple[int, int]) -> None:
    """A `vitontrain sample`-shaped folder: 'paired' images = the real persons (so paired metrics are perfect),
    'unpaired' images = noise."""
    real = real_person_images(shards, split=None)
    (out / "pair").mkdir(parents=True)
    (out / "unpair").mkdir()
    items = []
    rng = np.random.default_rng(0)
    for pid, img in sorted(real.items()):
        h, w = size
        Image.fromarray(img).resize((w, h), Image.Resampling.BICUBIC).save(out / f"pair/{pid}_{pid}.png")
        items.append({"file": f"pair/{pid}_{pid}.png", "mode": "paired", "person": pid, "cloth": pid})
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(out / f"unpair/{pid}_x.png")
        items.append({"file": f"unpair/{pid}_x.png", "mode": "unpaired", "person": pid, "cloth": "x"})
    (out / "samples.json").write_text(json.dumps({"sampling": {"sampler": "plms"}, "items": items}))


def test_evaluate_run_report(vitonhd_shards, weights, tmp_path):
    _fake_run(vitonhd_shards, tmp_path / "gen", (128, 96))
    protocol = EvalProtocol(height=128, width=96, inception_weights=weights["inception"],
                            lpips_backbone_weights=weights["alex"], kid_subsets=10, feature_dim=64)
    report = evaluate_run(tmp_path / "gen", vitonhd_shards, protocol, split=None, report_path=tmp_path / "m.json")
    assert json.loads((tmp_path / "m.json").read_text()) == json.loads(json.dumps(report))
    paired, unpaired = report["results"]["paired"], report["results"]["unpaired"]
    assert paired["n"] == 3 and unpaired["n"] == 3
    assert paired["ssim"] == pytest.approx(1.0, abs=1e-9) and paired["lpips"] == pytest.approx(0.0, abs=1e-7)
    assert abs(paired["fid"]) < 1e-2 and unpaired["fid"] > 10
    assert paired["kid_subset_size"] == 3
    p = report["protocol"]
    assert p["image_size_hw"] == [128, 96] and p["resize"]["filter"] == "PIL bicubic"
    assert p["fid_kid"]["feature_dim"] == 64 and p["fid_kid"]["standard_feature_dim"] is False
    assert len(p["fid_kid"]["weights"]["sha256"]) == 64 and p["lpips"]["backbone_weights"]["sha256"]
    assert report["resized"]["real"] == {"shrunk": 3, "enlarged": 0, "kept": 0}      # 1024x768 → 128x96
    assert report["resized"]["generated"] == {"shrunk": 0, "enlarged": 0, "kept": 6}
    assert sorted(x[1] for x in report["test_lists"]["paired"]) == report["real_persons"]


def test_cli_evaluate(vitonhd_shards, weights, tmp_path):
    from typer.testing import CliRunner

    from vitontrain.cli import app

    _fake_run(vitonhd_shards, tmp_path / "gen", (128, 96))
    runner = CliRunner()
    base = ["evaluate", str(tmp_path / "gen"), str(vitonhd_shards), "--height", "128", "--width", "96",
            "--kid-subsets", "5", "--feature-dim", "64"]
    res = runner.invoke(app, base + ["--inception-weights", str(tmp_path / "missing.pth"),
                                     "--lpips-weights", str(weights["alex"])])
    assert res.exit_code == 2 and "weights file not found" in res.output
    res = runner.invoke(app, ["evaluate", str(tmp_path / "nothing"), str(vitonhd_shards), "--inception-weights",
                              str(weights["inception"]), "--lpips-weights", str(weights["alex"])])
    assert res.exit_code == 1 and "samples.json" in res.output
    res = runner.invoke(app, base + ["--inception-weights", str(weights["inception"]),
                                     "--lpips-weights", str(weights["alex"]), "--report", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    written = json.loads((tmp_path / "r.json").read_text())
    assert written["results"]["paired"]["ssim"] == pytest.approx(1.0)
    assert written["device"] == ("cuda" if torch.cuda.is_available() else "cpu")  # --device auto, resolved
    assert "not the reference file" in res.output  # random-init weights: the CLI says the numbers are not comparable
    if not torch.cuda.is_available():  # a GPU asked for where there is none: one line, exit 2, before any image
        res = runner.invoke(app, base + ["--inception-weights", str(weights["inception"]), "--lpips-weights",
                                         str(weights["alex"]), "--device", "cuda",
                                         "--report", str(tmp_path / "c.json")])
        assert res.exit_code == 2 and "no CUDA device" in res.output and not (tmp_path / "c.json").exists()
    res = runner.invoke(app, base + ["--inception-weights", str(weights["inception"]), "--lpips-weights",
                                     str(weights["alex"]), "--device", "gpu0"])
    assert res.exit_code == 2 and "gpu0" in res.output


def test_extractors_compute_on_the_given_device(weights):
    """Images go to the extractors' device and features come back to the CPU for FID/KID (the meta device stands
    in for a GPU: a tensor left on the CPU would meet meta weights and fail)."""
    seen = []

    class Probe(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            seen.append((x.device.type, self.w.device.type))
            return torch.zeros(x.shape[0], 4)

    feats = InceptionFeatures(Probe(), 2, device="meta")(_photos(3))
    assert seen == [("meta", "meta"), ("meta", "meta")] and feats.device.type == "cpu" and feats.shape == (3, 4)


def test_real_person_sources(vitonhd_shards, tmp_path):
    ids = {"00891_00", "03615_00", "07445_00"}
    folder = real_person_images(DATA / "vitonhd-official", split="test")  # no test/ level: falls back to image/
    shards = real_person_images(vitonhd_shards, split="test")
    assert set(folder) == ids and set(shards) == ids
    assert shards["00891_00"].shape == (1024, 768, 3)
    assert np.array_equal(shards["00891_00"], np.asarray(Image.open(folder["00891_00"]).convert("RGB")))
    with pytest.raises(ValueError, match="0 samples of split train; the shards hold 3 of split test"):
        real_person_images(vitonhd_shards, split="train")  # the bundled sample is the test split: said, not {}
    with pytest.raises(FileNotFoundError):
        real_person_images(tmp_path)


def test_lpips_linear_heads_given_as_a_file_load_like_the_bundled_ones(weights, nets, tmp_path):
    """An explicit --lpips-linear file reaches torchmetrics as tensors we read weights-only (re-serialised in
    memory), and gives the same network as the bundled default."""
    linear = tmp_path / "alex_linear.pth"
    shutil.copy(default_lpips_linear_path("alex"), linear)
    explicit = build_lpips(weights["alex"], linear)
    x, y = torch.rand(1, 3, 64, 64) * 2 - 1, torch.rand(1, 3, 64, 64) * 2 - 1
    assert torch.equal(explicit(x, y), nets[1](x, y))
    zeroed = tmp_path / "zero_linear.pth"
    heads = torch.load(linear, map_location="cpu", weights_only=True)
    torch.save({k: torch.zeros_like(v) for k, v in heads.items()}, zeroed)
    assert float(build_lpips(weights["alex"], zeroed)(x, y).abs().max()) == 0.0


def test_cli_evaluate_json_on_stdout_and_a_split_the_shards_lack(vitonhd_shards, weights, tmp_path):
    from typer.testing import CliRunner

    from vitontrain.cli import app

    _fake_run(vitonhd_shards, tmp_path / "gen", (128, 96))
    base = ["evaluate", str(tmp_path / "gen"), str(vitonhd_shards), "--height", "128", "--width", "96",
            "--kid-subsets", "5", "--feature-dim", "64", "--inception-weights", str(weights["inception"]),
            "--lpips-weights", str(weights["alex"]), "--no-progress"]
    res = CliRunner().invoke(app, base + ["--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)  # stdout holds the JSON alone: the table and warnings went to stderr
    assert summary["command"] == "evaluate" and summary["n_real"] == 3 and summary["split"] == "test"
    assert summary["results"]["paired"]["ssim"] == pytest.approx(1.0) and summary["report"].endswith("metrics.json")
    # the bundled persons are test samples: asking for train says what the shards hold, not "no person images"
    res = CliRunner().invoke(app, base + ["--split", "train"])
    assert res.exit_code == 1
    message = "0 samples of split train; the shards hold 3 of split test: pass --split test"
    assert message in " ".join(res.output.split())


def test_a_vitonhd_folder_without_the_split_names_the_one_it_has(tmp_path):
    (tmp_path / "train/image").mkdir(parents=True)
    shutil.copy(DATA / "vitonhd-official/image/00891_00.jpg", tmp_path / "train/image/00891_00.jpg")
    with pytest.raises(FileNotFoundError, match="no test/image/ folder; it has train/image/: pass --split train"):
        real_person_images(tmp_path, "test")
    assert list(real_person_images(tmp_path, "train")) == ["00891_00"]
