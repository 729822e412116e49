"""Augmentation pipelines: shapes, dtypes, normalisation, crop modes, seeding and config errors."""
import numpy as np
import pytest
import torch

from reid.data.transforms import IMAGENET_MEAN, IMAGENET_STD, build_transforms

IMG = np.random.default_rng(0).integers(0, 256, (40, 20, 3), dtype=np.uint8)


@pytest.mark.parametrize("cfg", [{"height": 32, "width": 16},
                                 {"height": 32, "width": 16, "random_resized_crop": {"scale": [0.64, 1.0]}},
                                 {"height": 32, "width": 16, "color_jitter": 0.8, "pad": 0}])
@pytest.mark.parametrize("train", [True, False])
def test_output_shape_dtype(cfg, train):
    out = build_transforms(cfg, train=train)(image=IMG)["image"]
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.shape == (3, 32, 16)


def test_defaults_are_256_by_128():
    out = build_transforms(None, train=False)(image=IMG)["image"]
    assert out.shape == (3, 256, 128)


def test_test_pipeline_is_resize_plus_imagenet_normalisation():
    img = np.full((8, 4, 3), 124, np.uint8)
    out = build_transforms({"height": 6, "width": 3}, train=False)(image=img)["image"]
    expected = (124 / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    assert torch.allclose(out[:, 0, 0], torch.tensor(expected, dtype=torch.float32), atol=1e-5)
    assert torch.allclose(out, out[:, :1, :1].expand_as(out))


def test_seed_makes_train_pipeline_reproducible():
    cfg = {"height": 32, "width": 16, "color_jitter": 0.5}
    a = build_transforms(cfg, train=True, seed=3)(image=IMG)["image"]
    b = build_transforms(cfg, train=True, seed=3)(image=IMG)["image"]
    assert torch.equal(a, b)
    t = build_transforms(cfg, train=True, seed=3)
    outs = [t(image=IMG)["image"] for _ in range(4)]
    assert any(not torch.equal(outs[0], o) for o in outs[1:])  # augmentation actually varies


def test_random_erasing_changes_a_rectangle_only():
    cfg = {"height": 32, "width": 16, "pad": 0, "hflip": 0, "random_erasing": 1.0}
    erased = build_transforms(cfg, train=True, seed=0)(image=IMG)["image"]
    plain = build_transforms({**cfg, "random_erasing": 0}, train=True)(image=IMG)["image"]
    diff = (erased != plain).any(0)
    rows, cols = diff.any(1).nonzero().flatten(), diff.any(0).nonzero().flatten()
    assert diff.sum() > 0
    box = diff[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    assert box.float().mean() > 0.9  # the changed pixels form one rectangle


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ValueError, match="heigth.*valid keys: height, width"):
        build_transforms({"heigth": 10}, train=True)
