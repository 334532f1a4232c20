"""SAM cloth masks (vitonprep.backends.cloth_mask_sam): loading, prompts, and agreement with segment-anything itself.

SAM is run by the ``segment-anything`` package (the original implementation), so there is no port to compare: the
tests check that our loading path and prompting give exactly what the package gives for the same weights and
prompts. The model is segment-anything's own ``_build_sam`` with a tiny image encoder (embed dim 32, depth 2,
2 heads; prompt encoder and mask decoder at their real size) at seeded random initialisation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("segment_anything")

from PIL import Image  # noqa: E402

from vitonprep.backends import cloth_mask_sam as sam_mod  # noqa: E402
from vitonprep.errors import InputError  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples" / "cloth"


def tiny_sam():
    from segment_anything.build_sam import _build_sam

    return _build_sam(encoder_embed_dim=32, encoder_depth=2, encoder_num_heads=2, encoder_global_attn_indexes=[1])


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    model = tiny_sam()
    path = tmp_path_factory.mktemp("sam") / "sam_tiny.pth"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def cloth():
    img = Image.open(sorted(SAMPLES.glob("*.jpg"))[0]).convert("RGB").resize((192, 256), Image.BILINEAR)
    return np.asarray(img)


def test_prediction_equals_segment_anything(weights, cloth):
    from segment_anything import SamPredictor

    backend = sam_mod.SAMClothMask(sam_mod.SAMClothMaskConfig(), weights_path=weights, build=tiny_sam)
    box, point = backend.prompt(cloth)
    ours = backend.predict(cloth, box, point)
    ref_model = tiny_sam()
    ref_model.load_state_dict(torch.load(weights, weights_only=True))
    predictor = SamPredictor(ref_model.eval())
    predictor.set_image(cloth)
    masks, _, _ = predictor.predict(point_coords=point[None], point_labels=np.array([1]), box=box,
                                    multimask_output=False)
    assert ours.shape == cloth.shape[:2]
    np.testing.assert_array_equal(ours, masks[0])


def test_prompt_comes_from_the_garment(weights, cloth):
    from vitonprep.backends.cloth_mask_opencv import cloth_mask

    backend = sam_mod.SAMClothMask(sam_mod.SAMClothMaskConfig(box_margin=0.0), weights_path=weights, build=tiny_sam)
    box, point = backend.prompt(cloth)
    prior = cloth_mask(cloth)
    ys, xs = np.nonzero(prior)
    np.testing.assert_array_equal(box, [xs.min(), ys.min(), xs.max(), ys.max()])
    assert prior[int(point[1]), int(point[0])]


def test_call_is_the_filled_prediction(weights, cloth):
    backend = sam_mod.SAMClothMask(sam_mod.SAMClothMaskConfig(), weights_path=weights, build=tiny_sam)
    raw = backend.predict(cloth, *backend.prompt(cloth))
    filled = sam_mod.fill_silhouette(raw)
    if filled.any():
        np.testing.assert_array_equal(backend(cloth), filled)
    else:
        with pytest.raises(ValueError, match="empty mask"):
            backend(cloth)


def test_prompt_from_prior_centre_and_hole():
    prior = np.zeros((40, 60), bool)
    prior[10:30, 5:55] = True
    box, point = sam_mod.prompt_from_prior(prior, 0.1)
    np.testing.assert_allclose(box, [0, 8, 59, 31])  # margins 5 px / 2 px, clipped at the image edge
    np.testing.assert_allclose(point, [29.5, 19.5])
    prior[:, 20:40] = False  # two legs: the box centre is background -> the most interior garment pixel
    box, point = sam_mod.prompt_from_prior(prior, 0.0)
    assert prior[int(point[1]), int(point[0])]
    with pytest.raises(ValueError, match="empty garment prior"):
        sam_mod.prompt_from_prior(np.zeros((5, 5), bool), 0.0)


def test_fill_silhouette():
    m = np.zeros((20, 20), bool)
    m[2:12, 2:12] = True
    m[5:8, 5:8] = False  # hole
    m[15:17, 15:17] = True  # speck
    out = sam_mod.fill_silhouette(m)
    assert out[6, 6] and not out[16, 16] and out.sum() == 100


def test_refuses_missing_or_misshapen_key(weights, tmp_path):
    sd = torch.load(weights, weights_only=True)
    bad = dict(sd)
    del bad["mask_decoder.iou_prediction_head.layers.2.bias"]
    torch.save(bad, tmp_path / "a.pth")
    with pytest.raises(ValueError, match=r"iou_prediction_head\.layers\.2\.bias"):
        sam_mod.load_sam(tmp_path / "a.pth", tiny_sam)
    bad = dict(sd)
    bad["image_encoder.pos_embed"] = torch.zeros(1, 64, 64, 33)
    torch.save(bad, tmp_path / "b.pth")
    with pytest.raises(ValueError, match=r"image_encoder\.pos_embed.*\(1, 64, 64, 33\)"):
        sam_mod.load_sam(tmp_path / "b.pth", tiny_sam)


def test_official_builders_match_the_registered_files():
    # vit_h / vit_l / vit_b: the registry builders exist and the weight specs name the official checkpoints
    from segment_anything import sam_model_registry

    assert set(sam_mod.WEIGHTS) <= set(sam_model_registry)
    assert sam_mod.WEIGHTS["vit_h"].filename == "sam_vit_h_4b8939.pth"


def test_missing_weights_are_named(tmp_path, monkeypatch):
    from vitonprep.weights import MissingWeightsError

    monkeypatch.delenv("VITONPREP_WEIGHTS_DIR", raising=False)
    with pytest.raises(MissingWeightsError, match=r"sam_vit_h_4b8939\.pth.*segment-anything"):
        sam_mod.SAMClothMask(sam_mod.SAMClothMaskConfig(), weights_dir=tmp_path)


def test_batched_masks_equal_single_ones(weights):
    """Three garment photos share one image-encoder pass; each mask equals its single-photo call exactly."""
    imgs = [np.asarray(Image.open(p).convert("RGB").resize((96, 128), Image.BILINEAR))
            for p in sorted(SAMPLES.glob("*.jpg"))[:3]]
    backend = sam_mod.SAMClothMask(sam_mod.SAMClothMaskConfig(device="cpu"), weights_path=weights, build=tiny_sam)
    blank = np.full((128, 96, 3), 200, np.uint8)  # no garment: the OpenCV prior gives no prompt
    batched = backend.call_batch(imgs + [blank])
    for img, got in zip(imgs, batched[:3], strict=True):
        np.testing.assert_array_equal(got, backend(img))
    assert isinstance(batched[3], InputError)  # a photo without a garment fails alone
    with pytest.raises(ValueError, match="uint8 RGB"):  # not an image: the caller's bug, raised
        backend.call_batch([np.zeros((4, 4), np.uint8)])
    assert str(backend.device) == "cpu"
