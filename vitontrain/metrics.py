"""SSIM, LPIPS, FID and KID with a pinned protocol (docs/evaluation.md), via torchmetrics.

Nothing here downloads: the InceptionV3 (FID/KID) and the LPIPS backbone weights are files the user names, and a
missing file is an error before any image is read.

* **Images**: RGB uint8 at the protocol size H×W (default 512×384, the model's output size). An image of another
  size is resized with PIL (default ``bicubic``, antialiased when shrinking); the report counts how many images were
  shrunk or enlarged, per side.
* **SSIM** (paired): ``torchmetrics.image.StructuralSimilarityIndexMeasure`` — Gaussian window 11, σ 1.5,
  k1 0.01, k2 0.03, ``data_range`` 1.0 on RGB in [0,1], mean over channels, pixels and images.
* **LPIPS** (paired): torchmetrics' LPIPS network (``_NoTrainLpips``, ``net="alex"`` by default, version 0.1) built
  with ``pnet_rand=True`` (no torchvision download), its backbone loaded from the user's torchvision state dict
  (``features.*`` keys, e.g. ``alexnet-owt-7be5be79.pth``); the linear heads are torchmetrics' bundled LPIPS v0.1
  file unless another path is given. Inputs in [-1,1], mean over images.
* **FID / KID** (paired and unpaired): torch-fidelity's TF-ported InceptionV3 (torchmetrics ``NoTrainInceptionV3``,
  ``inception-v3-compat``, 2048-d pool features) loaded from the user's file (the FID weights
  ``weights-inception-2015-12-05-6726825d.pth``), resized to 299×299 with the TF1-compatible bilinear
  interpolation (``antialias=False``, as torch-fidelity and the original TF FID do). Features are computed once per
  image and fed to ``FrechetInceptionDistance`` and ``KernelInceptionDistance`` (subsets 100, subset size
  min(1000, n), polynomial kernel degree 3, γ = 1/d, coef 1).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

logger = logging.getLogger(__name__)

RESIZE_FILTERS = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR,
                  "lanczos": Image.Resampling.LANCZOS, "box": Image.Resampling.BOX}
LPIPS_NETS = ("alex", "vgg", "squeeze")
FEATURE_DIM = 2048
#: Inception feature layers torch-fidelity exposes; 2048 (pool3) is the FID/KID standard, the others exist for fast
#: tests and are recorded in the report (numbers at another dimension are not comparable with published ones).
FEATURE_DIMS = (64, 192, 768, 2048)
#: sha256 prefixes of the reference weights files (torch hub naming: the 8 hex digits in the file name):
#: torch-fidelity's weights-inception-2015-12-05-6726825d.pth and torchvision's ImageNet backbones.
REFERENCE_SHA256_PREFIX = {"inception": "6726825d", "alex": "7be5be79", "vgg": "397923af", "squeeze": "b8a52dc0"}


class WeightsError(FileNotFoundError):
    """A weights file is missing or does not contain what the metric needs."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _read_weights(path: Path | str, what: str) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{what} weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # an unreadable or unsafe pickle: say which file and why (first line: torch's are long)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise WeightsError(f"{what} weights {path}: refusing to load — not a plain state dict of tensors "
                           f"(torch.load weights_only=True: {first})") from exc
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{what} weights {path}: not a state dict of tensors")
    return obj


# ------------------------------------------------------------------------------------------------ extractors
def build_inception(weights: Path | str, feature_dim: int = FEATURE_DIM) -> nn.Module:
    """torch-fidelity's FID InceptionV3 (2048-d pool features by default) with the user's weights; never downloads."""
    from torchmetrics.image.fid import NoTrainInceptionV3

    if feature_dim not in FEATURE_DIMS:
        raise ValueError(f"Inception feature dimension {feature_dim}: choose one of {FEATURE_DIMS}")
    # torch-fidelity loads its weights with a full unpickler (weights_only=False): it gets the tensors we read
    # weights-only, re-serialised in memory, never the user's file.
    state = io.BytesIO()
    torch.save(_read_weights(weights, "InceptionV3 (FID/KID)"), state)
    state.seek(0)
    try:
        net = NoTrainInceptionV3("inception-v3-compat", [str(feature_dim)], state, antialias=False)
    except RuntimeError as exc:
        raise WeightsError(f"InceptionV3 weights {weights}: do not fit torch-fidelity's InceptionV3 ({exc})") from exc
    return net.eval()


def build_lpips(backbone_weights: Path | str, linear_weights: Path | str | None = None, net: str = "alex"
                ) -> nn.Module:
    """torchmetrics' LPIPS network with the backbone from a torchvision state dict (``features.*``)."""
    from torchmetrics.functional.image.lpips import _NoTrainLpips

    if net not in LPIPS_NETS:
        raise ValueError(f"LPIPS net {net!r}: choose one of {LPIPS_NETS}")
    backbone = _read_weights(backbone_weights, f"LPIPS {net} backbone")
    linear = None
    if linear_weights is not None:
        # torchmetrics reads it with torch.load's default unpickler (a full one under TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD):
        # it gets the tensors we read weights-only, re-serialised in memory
        linear = io.BytesIO()
        torch.save(_read_weights(linear_weights, "LPIPS linear-layer"), linear)
        linear.seek(0)
    # pnet_rand=True: the torchvision backbone is built without weights (no download); ours are loaded below.
    model = _NoTrainLpips(pretrained=True, net=net, pnet_rand=True, model_path=linear)
    # The LPIPS slices hold torchvision's ``features`` layers under their original indices.
    mapped, missing = {}, []
    for name, _ in model.net.named_parameters():
        _slice, index, pname = name.split(".", 2)
        key = f"features.{index}.{pname}"
        if key not in backbone:
            missing.append(key)
        else:
            mapped[name] = backbone[key]
    if missing:
        raise WeightsError(f"LPIPS {net} backbone {backbone_weights}: missing {missing[:4]}… — expected a "
                           f"torchvision {net} state dict with 'features.*' keys")
    try:
        model.net.load_state_dict(mapped, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"LPIPS {net} backbone {backbone_weights}: shapes do not fit ({exc})") from exc
    return model.eval()


def default_lpips_linear_path(net: str = "alex") -> Path:
    """The LPIPS v0.1 linear heads bundled with torchmetrics (no download)."""
    import torchmetrics.functional.image.lpips as tm_lpips

    return Path(tm_lpips.__file__).parent / "lpips_models" / f"{net}.pth"


# --------------------------------------------------------------------------------------------------- protocol
@dataclass(frozen=True)
class EvalProtocol:
    height: int = 512
    width: int = 384
    resize_filter: str = "bicubic"
    inception_weights: Path | None = None
    lpips_backbone_weights: Path | None = None
    lpips_linear_weights: Path | None = None
    lpips_net: str = "alex"
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    feature_dim: int = FEATURE_DIM
    batch_size: int = 16

    def __post_init__(self) -> None:
        if self.resize_filter not in RESIZE_FILTERS:
            raise ValueError(f"resize filter {self.resize_filter!r}: choose one of {sorted(RESIZE_FILTERS)}")
        if self.feature_dim not in FEATURE_DIMS:
            raise ValueError(f"feature_dim {self.feature_dim}: choose one of {FEATURE_DIMS}")

    def check_files(self, need_inception: bool = True, need_lpips: bool = True) -> None:
        """Fail before reading any image when a weights file is missing."""
        if need_inception:
            if self.inception_weights is None:
                raise WeightsError("FID/KID need the InceptionV3 weights file (--inception-weights)")
            if not Path(self.inception_weights).is_file():
                raise WeightsError(f"InceptionV3 (FID/KID) weights file not found: {self.inception_weights}")
        if need_lpips:
            if self.lpips_backbone_weights is None:
                raise WeightsError("LPIPS needs the backbone weights file (--lpips-weights)")
            if not Path(self.lpips_backbone_weights).is_file():
                raise WeightsError(f"LPIPS backbone weights file not found: {self.lpips_backbone_weights}")
            if self.lpips_linear_weights is not None and not Path(self.lpips_linear_weights).is_file():
                raise WeightsError(f"LPIPS linear-layer weights file not found: {self.lpips_linear_weights}")
        # Every file read as weights only, before any image: an unsafe pickle is refused here, by name.
        if need_inception:
            _read_weights(self.inception_weights, "InceptionV3 (FID/KID)")
        if need_lpips:
            _read_weights(self.lpips_backbone_weights, f"LPIPS {self.lpips_net} backbone")
            if self.lpips_linear_weights is not None:
                _read_weights(self.lpips_linear_weights, "LPIPS linear-layer")

    def describe(self) -> dict[str, Any]:
        """The protocol as written into every report, with the weights files' sha256."""
        import torchmetrics

        try:
            import torch_fidelity
            tf_version = torch_fidelity.__version__
        except ImportError:  # pragma: no cover - torch-fidelity is a dependency of FID here
            tf_version = None
        linear = self.lpips_linear_weights or default_lpips_linear_path(self.lpips_net)

        def file_info(p: Path | None, reference: str | None = None) -> dict[str, Any] | None:
            if p is None:
                return None
            info: dict[str, Any] = {"path": str(p), "sha256": sha256_file(Path(p))}
            if reference is not None:
                # False means: not the reference file, numbers are not comparable with published ones
                info["is_reference_file"] = info["sha256"].startswith(reference)
            return info

        return {
            "image_size_hw": [self.height, self.width],
            "resize": {"filter": f"PIL {self.resize_filter}", "when": "any image not at image_size_hw, real or "
                       "generated; directions are counted in 'resized'"},
            "ssim": {"impl": "torchmetrics StructuralSimilarityIndexMeasure", "gaussian_kernel": True,
                     "kernel_size": 11, "sigma": 1.5, "k1": 0.01, "k2": 0.03, "data_range": 1.0,
                     "input": "RGB float [0,1]"},
            "lpips": {"impl": "torchmetrics _NoTrainLpips (LPIPS v0.1)", "net": self.lpips_net,
                      "backbone_weights": file_info(self.lpips_backbone_weights,
                                                    REFERENCE_SHA256_PREFIX[self.lpips_net]),
                      "linear_weights": file_info(linear), "input": "RGB float [-1,1]"},
            "fid_kid": {"impl": "torchmetrics FrechetInceptionDistance / KernelInceptionDistance",
                        "extractor": "torch-fidelity InceptionV3 'inception-v3-compat'",
                        "feature_dim": self.feature_dim, "standard_feature_dim": self.feature_dim == FEATURE_DIM,
                        "extractor_resize": "299x299, TF1-compatible bilinear (antialias=False)",
                        "weights": file_info(self.inception_weights, REFERENCE_SHA256_PREFIX["inception"]),
                        "input": "RGB uint8",
                        "kid": {"subsets": self.kid_subsets, "subset_size": f"min({self.kid_subset_size}, n)",
                                "degree": 3, "gamma": "1/d", "coef": 1.0, "subset_seed": 0}},
            "versions": {"torch": torch.__version__, "torchmetrics": torchmetrics.__version__,
                         "torch_fidelity": tf_version},
        }


@dataclass
class ResizeCounter:
    shrunk: int = 0
    enlarged: int = 0
    kept: int = 0

    def load(self, path_or_array: Path | np.ndarray, height: int, width: int, resample: int) -> np.ndarray:
        img = (Image.open(path_or_array) if isinstance(path_or_array, Path)
               else Image.fromarray(np.asarray(path_or_array)))
        img = img.convert("RGB")
        if img.size == (width, height):
            self.kept += 1
        else:
            if img.width >= width and img.height >= height:
                self.shrunk += 1
            else:
                self.enlarged += 1
            img = img.resize((width, height), resample)
        return np.asarray(img)


# ------------------------------------------------------------------------------------------------ the metrics
def _to_tensor(images: Sequence[np.ndarray]) -> torch.Tensor:
    """HWC uint8 list → NCHW uint8 tensor."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


class _Identity(nn.Module):
    """Feature "extractor" for torchmetrics when features are computed once outside (shared by FID and KID)."""

    num_features = FEATURE_DIM

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class InceptionFeatures:
    """2048-d Inception features of uint8 image batches, batched, computed on ``device`` (features come back on the
    CPU in float64, where FID/KID are computed)."""

    def __init__(self, net: nn.Module, batch_size: int = 16, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.net = net.to(self.device)
        self.batch_size = batch_size

    @torch.no_grad()
    def __call__(self, images: Sequence[np.ndarray], progress: Callable[[int], None] | None = None) -> torch.Tensor:
        feats = []
        for i in range(0, len(images), self.batch_size):
            chunk = images[i:i + self.batch_size]
            out = self.net(_to_tensor(chunk).to(self.device, non_blocking=True))
            feats.append(out.double().cpu().reshape(len(chunk), -1))
            if progress is not None:
                progress(len(chunk))
        if not feats:
            raise ValueError("no images to extract features from")
        return torch.cat(feats)


def fid_kid(real_feats: torch.Tensor, fake_feats: torch.Tensor, subsets: int = 100, subset_size: int = 1000,
            seed: int = 0) -> dict[str, float]:
    """FID and KID of two feature sets with torchmetrics (KID subsets drawn with a fixed torch seed)."""
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    n = min(len(real_feats), len(fake_feats))
    if n < 2:
        raise ValueError(f"FID/KID need at least 2 real and 2 generated images (got {len(real_feats)} real, "
                         f"{len(fake_feats)} generated)")
    dim = real_feats.shape[1]
    ident = _Identity()
    ident.num_features = dim
    fid = FrechetInceptionDistance(feature=ident)
    fid.update(real_feats.double(), real=True)
    fid.update(fake_feats.double(), real=False)
    size = min(subset_size, n)
    with warnings.catch_warnings():
        # "will save all extracted features in buffer": expected, features are 2048 floats per image
        warnings.filterwarnings("ignore", message=".*save all extracted features.*")
        kid = KernelInceptionDistance(feature=ident, subsets=subsets, subset_size=size)
    kid.update(real_feats.double(), real=True)
    kid.update(fake_feats.double(), real=False)
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)  # KID draws its subsets with torch's global RNG: pin it, then restore
    try:
        kid_mean, kid_std = kid.compute()
    finally:
        torch.random.set_rng_state(state)
    return {"fid": float(fid.compute()), "kid_mean": float(kid_mean), "kid_std": float(kid_std),
            "kid_subset_size": size}


@torch.no_grad()
def ssim_lpips(fake: Sequence[np.ndarray], real: Sequence[np.ndarray], lpips_net: nn.Module | None,
               batch_size: int = 16, progress: Callable[[int], None] | None = None,
               device: torch.device | str = "cpu") -> dict[str, Any]:
    """Mean SSIM (and LPIPS when a network is given) over aligned pairs of uint8 HWC images. LPIPS runs on
    ``device``; SSIM stays on the CPU in float64 (cheap, and exact to ~1e-12 whatever the device)."""
    from torchmetrics.image import StructuralSimilarityIndexMeasure

    if len(fake) != len(real):
        raise ValueError(f"paired metrics need aligned lists ({len(fake)} generated, {len(real)} real)")
    ssim = StructuralSimilarityIndexMeasure(gaussian_kernel=True, kernel_size=11, sigma=1.5, k1=0.01, k2=0.03,
                                            data_range=1.0, reduction="none")
    ssim_scores, lpips_scores = [], []
    for i in range(0, len(fake), batch_size):
        # float64: SSIM of identical images is then 1 to ~1e-12 (float32 leaves ~1e-4 of cancellation error)
        f = _to_tensor(fake[i:i + batch_size]).double() / 255.0
        r = _to_tensor(real[i:i + batch_size]).double() / 255.0
        ssim_scores.append(ssim(f, r).reshape(-1).double())
        if lpips_net is not None:
            lp = lpips_net.to(device)(f.float().to(device) * 2 - 1, r.float().to(device) * 2 - 1)
            lpips_scores.append(lp.reshape(-1).double().cpu())
        if progress is not None:
            progress(len(f))
    out: dict[str, Any] = {"ssim": float(torch.cat(ssim_scores).mean())}
    if lpips_net is not None:
        out["lpips"] = float(torch.cat(lpips_scores).mean())
    return out


# ----------------------------------------------------------------------------------------------- real images
def real_person_images(source: Path, split: str | None = "test") -> dict[str, Any]:
    """person id → image (a file path, or a decoded HWC uint8 array for shards) of the real test persons.

    ``source``: vitonprep shards (each sample's ``image.jpg``; ``meta.person_id``), a VITON-HD folder
    (``{split}/image/*.jpg`` or ``image/*.jpg``) or a plain folder of person photos (file stem = person id).
    """
    source = Path(source)
    if not source.is_dir():
        raise FileNotFoundError(f"real-image source not found: {source}")
    if any(source.glob("*.tar")):
        from vitontrain.data.shards import decode_sample, raw_samples, shard_urls

        out: dict[str, Any] = {}
        for url in shard_urls(source):
            # the trainer's reader and the contract's decoders (pixel limit, strict JPEG); a damaged shard or
            # member is a ValueError naming shard and sample
            for raw in raw_samples(url):
                meta = decode_sample({k: v for k, v in raw.items() if k in ("__key__", "__url__", "meta.json")})
                meta = meta.get("meta") or {}
                pid = meta.get("person_id") or raw["__key__"].split("__")[0]
                if split is not None and meta.get("split") not in (None, split):
                    continue
                if pid not in out:
                    if "image.jpg" not in raw:
                        raise ValueError(f"shard {url}: sample {raw['__key__']} has no image.jpg")
                    out[pid] = decode_sample({"__key__": raw["__key__"], "__url__": url,
                                              "image.jpg": raw["image.jpg"]})["image"]
        return out
    for folder in ([source / split / "image"] if split else []) + [source / "image", source]:
        if folder.is_dir():
            files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
            if files:
                return {p.stem: p for p in files}
    raise FileNotFoundError(f"{source}: no shards and no person images (looked in {split}/image/, image/, ./)")


# ------------------------------------------------------------------------------------------------- the run
@dataclass
class EvalInput:
    """Generated images of one mode with their person ids (the test list)."""

    files: list[Path] = field(default_factory=list)
    persons: list[str] = field(default_factory=list)
    cloths: list[str] = field(default_factory=list)


def read_generated(generated: Path) -> dict[str, EvalInput]:
    """The test lists of a ``vitontrain sample`` output folder (its ``samples.json``)."""
    manifest_path = Path(generated) / "samples.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{manifest_path} not found: evaluate reads the output folder of vitontrain sample")
    manifest = json.loads(manifest_path.read_text())
    lists: dict[str, EvalInput] = {}
    for item in manifest.get("items", []):
        ei = lists.setdefault(item["mode"], EvalInput())
        path = Path(generated) / item["file"]
        if not path.is_file():
            raise FileNotFoundError(f"{path} is listed in {manifest_path} but missing")
        ei.files.append(path)
        ei.persons.append(item["person"])
        ei.cloths.append(item.get("cloth", ""))
    return lists


def evaluate_run(generated: Path, real_source: Path, protocol: EvalProtocol, split: str | None = "test",
                 report_path: Path | None = None, progress: Callable[[str, int, int], None] | None = None,
                 device: str = "auto") -> dict[str, Any]:
    """Evaluate a ``vitontrain sample`` output against the real test persons; write and return the JSON report.

    Paired: SSIM, LPIPS (generated vs the person's own photo), FID, KID. Unpaired: FID, KID. FID/KID compare with
    the set of all real test person photos of ``real_source``. ``progress(stage, done, total)`` is called as images
    are processed. ``device``: where Inception and LPIPS run (auto = CUDA when torch sees one); it is written into
    the report and does not change the protocol.
    """
    from vitonprep.backends.devices import resolve_device

    compute = resolve_device(device)  # ConfigError when CUDA is asked for and there is none
    protocol.check_files()
    lists = read_generated(generated)
    if not lists:
        raise ValueError(f"{generated}/samples.json lists no images")
    real = real_person_images(real_source, split)
    if not real:
        raise ValueError(f"no real person images in {real_source}")
    resample = RESIZE_FILTERS[protocol.resize_filter]
    h, w = protocol.height, protocol.width
    resized = {"generated": ResizeCounter(), "real": ResizeCounter()}

    def tick(stage: str, total: int) -> Callable[[int], None]:
        done = [0]

        def f(n: int) -> None:
            done[0] += n
            if progress is not None:
                progress(stage, done[0], total)
        return f

    real_ids = sorted(real)
    real_imgs = {pid: resized["real"].load(real[pid], h, w, resample) for pid in real_ids}
    inception = InceptionFeatures(build_inception(protocol.inception_weights, protocol.feature_dim),
                                  protocol.batch_size, compute)
    lpips_net = build_lpips(protocol.lpips_backbone_weights, protocol.lpips_linear_weights, protocol.lpips_net)
    real_feats = inception([real_imgs[p] for p in real_ids], tick("real features", len(real_ids)))

    results: dict[str, Any] = {}
    for mode in ("paired", "unpaired"):
        if mode not in lists:
            continue
        ei = lists[mode]
        fake = [resized["generated"].load(p, h, w, resample) for p in ei.files]
        res: dict[str, Any] = {"n": len(fake)}
        if mode == "paired":
            missing = sorted({p for p in ei.persons if p not in real_imgs})
            if missing:
                raise ValueError(f"paired images of persons {missing[:5]} have no real photo in {real_source}")
            res.update(ssim_lpips(fake, [real_imgs[p] for p in ei.persons], lpips_net, protocol.batch_size,
                                  tick("paired SSIM/LPIPS", len(fake)), compute))
        fake_feats = inception(fake, tick(f"{mode} features", len(fake)))
        res.update(fid_kid(real_feats, fake_feats, protocol.kid_subsets, protocol.kid_subset_size))
        res["fid_reference"] = {"n_real": len(real_ids)}
        results[mode] = res
        logger.info("%s: %s", mode, {k: v for k, v in res.items() if isinstance(v, float)})

    report = {
        "generated": str(generated),
        "real_source": str(real_source),
        "split": split,
        "protocol": protocol.describe(),
        "device": str(compute),
        "resized": {k: asdict(v) for k, v in resized.items()},
        "results": results,
        "test_lists": {mode: [[str(f.relative_to(generated)), p, c] for f, p, c in
                              zip(ei.files, ei.persons, ei.cloths)] for mode, ei in lists.items()},
        "real_persons": real_ids,
        "sampling": json.loads((Path(generated) / "samples.json").read_text()).get("sampling"),
    }
    if resized["generated"].enlarged or resized["real"].enlarged:
        logger.warning("some images were enlarged to %dx%d (see 'resized' in the report)", h, w)
    if report_path is not None:
        Path(report_path).parent.mkdir(parents=True, exist_ok=True)
        Path(report_path).write_text(json.dumps(report, indent=1))
    return report
