"""Training augmentation: joint geometry keeps every person-aligned map aligned, masks stay binary, colour only on
images, DensePose sides swap on flip, the agnostic hole stays grey."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vitonprep.derive.densepose import parts_from_densepose_image, render_densepose
from vitontrain.data.augment import DENSEPOSE_MIRROR, AugmentConfig, ShiftScale, augment_sample, swap_densepose_sides
from vitontrain.data.transforms import resize_mask, to_model_sample

H, W = 128, 96


def synthetic_sample() -> dict:
    """Every person-aligned map marks the same rectangle; the cloth group marks another one."""
    person = np.zeros((H, W), bool)
    person[30:90, 20:60] = True
    cloth = np.zeros((H, W), bool)
    cloth[10:50, 40:90] = True
    parts = np.zeros((H, W), np.uint8)
    parts[30:90, 20:40] = 15     # upper arm left front
    parts[30:90, 40:60] = 2      # torso front
    image = np.full((H, W, 3), 40, np.uint8)
    image[person] = (200, 120, 60)
    agn = image.copy()
    agn[person] = 128
    cloth_img = np.full((H, W, 3), 250, np.uint8)
    cloth_img[cloth] = (10, 80, 200)
    return {"image": image, "agn": agn, "agn_mask": person.copy(), "gt_cloth_warped_mask": person.copy(),
            "image_densepose": render_densepose(parts), "cloth": cloth_img, "cloth_mask": cloth.copy()}


ALWAYS_GEOMETRY = AugmentConfig(hflip_p=1.0, shiftscale=True, person_shift=ShiftScale(p=1.0),
                                cloth_shift=ShiftScale(p=1.0), hsv_p=0.0, brightness_contrast_p=0.0)


@pytest.mark.parametrize("seed", range(6))
def test_geometry_keeps_person_maps_aligned_and_masks_binary(seed):
    out = augment_sample(synthetic_sample(), ALWAYS_GEOMETRY, np.random.default_rng(seed))
    region = out["agn_mask"]
    assert region.dtype == bool and out["gt_cloth_warped_mask"].dtype == bool and out["cloth_mask"].dtype == bool
    assert np.array_equal(region, out["gt_cloth_warped_mask"])
    assert 0 < region.sum() < H * W
    # the image, agnostic and DensePose moved with the masks (interior pixels; edges are interpolated)
    import cv2

    inner = cv2.erode(region.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    outer = ~cv2.dilate(region.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    assert np.all(out["image"][inner] == (200, 120, 60))
    assert np.all(out["agn"][inner] == 128)
    assert np.all(out["image_densepose"][inner].sum(-1) > 0) and np.all(out["image_densepose"][outer] == 0)
    # the cloth group moved with its own mask
    cinner = cv2.erode(out["cloth_mask"].astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    assert cinner.any() and np.all(out["cloth"][cinner] == (10, 80, 200))


def test_person_and_cloth_groups_draw_independent_shifts():
    moved = [augment_sample(synthetic_sample(), ALWAYS_GEOMETRY, np.random.default_rng(s)) for s in range(4)]
    person_centres = [np.argwhere(m["agn_mask"]).mean(0) for m in moved]
    cloth_centres = [np.argwhere(m["cloth_mask"]).mean(0) for m in moved]
    base_p = np.argwhere(synthetic_sample()["agn_mask"]).mean(0)
    base_c = np.argwhere(synthetic_sample()["cloth_mask"]).mean(0)
    offsets = [(p - base_p) - (c - base_c) for p, c in zip(person_centres, cloth_centres, strict=True)]
    assert max(np.abs(o).max() for o in offsets) > 2.0  # not one shared transform


def test_flip_swaps_densepose_sides_and_mirror_keeps_them():
    sample = synthetic_sample()
    flip_only = AugmentConfig(hflip_p=1.0, shiftscale=False, hsv_p=0.0, brightness_contrast_p=0.0)
    swapped = parts_from_densepose_image(augment_sample(sample, flip_only, np.random.default_rng(0))["image_densepose"])
    mirror = dataclasses.replace(flip_only, densepose_flip="mirror")
    mirrored = parts_from_densepose_image(augment_sample(sample, mirror, np.random.default_rng(0))["image_densepose"])
    original = parts_from_densepose_image(sample["image_densepose"])
    assert np.array_equal(mirrored, original[:, ::-1])
    assert np.array_equal(swapped, DENSEPOSE_MIRROR[original[:, ::-1]])
    assert (swapped == 16).any() and not (swapped == 15).any()   # left arm became right arm


def test_swap_is_an_involution_and_keeps_noise():
    rng = np.random.default_rng(1)
    parts = rng.integers(0, 25, size=(32, 24)).astype(np.uint8)
    rgb = render_densepose(parts).astype(np.int16) + rng.integers(-3, 4, size=(32, 24, 3))
    rgb = np.clip(rgb, 0, 255).astype(np.uint8)
    once = swap_densepose_sides(rgb)
    # the fast quantised lookup may misread a few noisy pixels between close palette colours
    assert (parts_from_densepose_image(once) == DENSEPOSE_MIRROR[parts]).mean() > 0.97
    clean = render_densepose(parts)
    assert np.array_equal(parts_from_densepose_image(swap_densepose_sides(clean)), DENSEPOSE_MIRROR[parts])
    assert np.array_equal(swap_densepose_sides(swap_densepose_sides(clean)), clean)


def test_colour_changes_images_only_and_regreys_the_hole():
    sample = synthetic_sample()
    colour = AugmentConfig(hflip_p=0.0, shiftscale=False, hsv_p=1.0, brightness_contrast_p=1.0,
                           brightness_limit=(-0.1, -0.1), contrast_limit=(0.3, 0.3))
    out = augment_sample(sample, colour, np.random.default_rng(3))
    assert not np.array_equal(out["image"], sample["image"]) and not np.array_equal(out["cloth"], sample["cloth"])
    for name in ("agn_mask", "gt_cloth_warped_mask", "cloth_mask", "image_densepose"):
        assert np.array_equal(out[name], sample[name]), name
    assert np.all(out["agn"][sample["agn_mask"]] == 128)
    assert not np.array_equal(out["agn"][~sample["agn_mask"]], sample["agn"][~sample["agn_mask"]])


def test_disabled_is_identity_and_same_seed_same_result():
    sample = synthetic_sample()
    same = augment_sample(sample, AugmentConfig(enabled=False), np.random.default_rng(0))
    assert all(np.array_equal(same[k], sample[k]) for k in sample)
    a = augment_sample(sample, AugmentConfig(), np.random.default_rng(7))
    b = augment_sample(sample, AugmentConfig(), np.random.default_rng(7))
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_model_sample_inverts_agn_mask_and_keeps_masks_binary():
    sample = synthetic_sample()
    out = to_model_sample(sample, 64, 48)
    assert out["agn_mask"].shape == (1, 64, 48)
    assert set(out["agn_mask"].unique().tolist()) == {0.0, 1.0}
    keep = out["agn_mask"][0].numpy().astype(bool)
    assert np.array_equal(keep, ~resize_mask(sample["agn_mask"], 64, 48))  # 1 = keep = not inpaint
    assert out["image"].min() >= -1 and out["image"].max() <= 1


def test_bad_config_is_refused():
    with pytest.raises(ValueError):
        AugmentConfig(densepose_flip="swapped")
    with pytest.raises(ValueError):
        AugmentConfig(hflip_p=1.5)
