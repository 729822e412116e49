"""Batched tensor augmentation against the albumentations pipeline (the reference): same parameter ranges and
rates, measured on many samples; determinism per seed key; the test pipeline equals it exactly."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from reid.data.batch_augment import BatchAugment, uses_tensor_pipeline
from reid.data.transforms import IMAGENET_MEAN, IMAGENET_STD, build_transforms

H, W, PAD, N = 16, 8, 3, 3000


def _coordinate_images(n: int) -> np.ndarray:
    """Pixel (y, x) holds 10 + 10 y in red and 10 + 20 x in green: the crop offset and flip read off one pixel."""
    img = np.zeros((H, W, 3), np.uint8)
    img[..., 0] = 10 + 10 * np.arange(H)[:, None]
    img[..., 1] = 10 + 20 * np.arange(W)[None, :]
    img[..., 2] = 77
    return np.repeat(img[None], n, axis=0)


def _unnormalize(x: torch.Tensor) -> np.ndarray:
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None] * 255
    std = torch.tensor(IMAGENET_STD)[:, None, None] * 255
    return torch.round(x * std + mean).numpy()


def _reference(cfg: dict, images: np.ndarray) -> torch.Tensor:
    pipeline = build_transforms(cfg, train=True, seed=1)
    return torch.stack([pipeline(image=im)["image"] for im in images])


def _crop_and_flip_stats(batch: torch.Tensor):
    """Per image: vertical / horizontal offset in [0, 2 * PAD] and whether it was flipped."""
    px = _unnormalize(batch)
    offsets_y, offsets_x, flips = [], [], []
    for img in px:
        red, green = img[0], img[1]
        rows = np.flatnonzero(red[:, W // 2] > 0)  # rows that come from the image, not the zero padding
        cols = np.flatnonzero(green[H // 2] > 0)
        y_img = (red[rows[0], W // 2] - 10) / 10  # image row shown in the first non-pad output row
        offsets_y.append(int(y_img + PAD - rows[0]))
        first, last = green[H // 2, cols[0]], green[H // 2, cols[-1]]
        flipped = first > last
        flips.append(flipped)
        x_img = ((last if flipped else first) - 10) / 20
        x_out = cols[-1] if flipped else cols[0]
        # Output column c shows padded column dx + c, or dx + W - 1 - c when flipped (crop, then flip).
        offsets_x.append(int(x_img + PAD - (W - 1 - x_out)) if flipped else int(x_img + PAD - x_out))
    return np.array(offsets_y), np.array(offsets_x), np.array(flips)


def test_crop_offsets_and_flip_rate_match_albumentations():
    cfg = {"height": H, "width": W, "pad": PAD, "hflip": 0.5, "random_erasing": 0.0}
    images = _coordinate_images(N)
    ours = BatchAugment(cfg)(torch.from_numpy(images), (0, 0, 0, 0))
    ref = _reference(cfg, images)
    oy, ox, of = _crop_and_flip_stats(ours)
    ry, rx, rf = _crop_and_flip_stats(ref)
    assert abs(of.mean() - 0.5) < 0.04 and abs(rf.mean() - 0.5) < 0.04
    for a, b in ((oy, ry), (ox, rx)):
        assert a.min() == b.min() == 0 and a.max() == b.max() == 2 * PAD
        freq_a = np.bincount(a, minlength=2 * PAD + 1) / N
        freq_b = np.bincount(b, minlength=2 * PAD + 1) / N
        np.testing.assert_allclose(freq_a, 1 / (2 * PAD + 1), atol=0.03)  # uniform over [0, 2 * pad]
        np.testing.assert_allclose(freq_a, freq_b, atol=0.04)


def test_erased_area_statistics_match_albumentations():
    cfg = {"height": 32, "width": 16, "pad": 0, "hflip": 0.0, "random_erasing": 0.5}
    images = np.zeros((N, 32, 16, 3), np.uint8)  # normalised black is < 0; the erasing fill is in [0, 1)
    stats = []
    for batch in (BatchAugment(cfg)(torch.from_numpy(images), (3, 1, 4)), _reference(cfg, images)):
        erased = (batch >= 0).all(dim=1)  # (N, H, W)
        area = erased.float().mean(dim=(1, 2)).numpy()
        hit = area > 0
        fill = batch.permute(0, 2, 3, 1)[erased]
        # One colour per erased rectangle: every erased pixel of an image has the same value.
        first = [batch[i, :, *np.argwhere(erased[i].numpy())[0]] for i in np.flatnonzero(hit)[:20]]
        for i, colour in zip(np.flatnonzero(hit)[:20], first):
            assert torch.equal(batch[i].permute(1, 2, 0)[erased[i]], colour.expand(int(erased[i].sum()), 3))
        stats.append((hit.mean(), area[hit].mean(), area[hit].std(), area[hit].min(), area[hit].max(),
                      float(fill.min()), float(fill.max()), float(fill.mean())))
    ours, ref = stats
    assert abs(ours[0] - 0.5) < 0.04 and abs(ref[0] - 0.5) < 0.04  # erasing rate
    assert abs(ours[1] - ref[1]) < 0.01 and abs(ours[2] - ref[2]) < 0.01  # mean / spread of the erased fraction
    assert ours[3] >= 0.2 * 0.2 * 0.8 and ours[4] <= 0.6 * 0.6 + 1e-6
    assert 0 <= ours[5] and ours[6] < 1 and abs(ours[7] - ref[7]) < 0.03  # fill uniform in [0, 1)


def test_colour_jitter_changes_images_within_the_configured_range():
    cfg = {"height": H, "width": W, "pad": 0, "hflip": 0.0, "random_erasing": 0.0, "color_jitter": 1.0}
    images = np.full((500, H, W, 3), 128, np.uint8)
    out = _unnormalize(BatchAugment(cfg)(torch.from_numpy(images), (0,)))
    mean = out.mean(axis=(1, 2, 3))
    assert mean.min() >= 128 * 0.8 - 1 and mean.max() <= 128 * 1.2 + 1  # brightness 0.8-1.2
    assert mean.std() > 5  # images do change
    off = {**cfg, "color_jitter": 0.0}
    assert np.all(_unnormalize(BatchAugment(off)(torch.from_numpy(images), (0,))) == 128)


def test_same_seed_key_same_batch_and_test_pipeline_equals_albumentations():
    cfg = {"height": H, "width": W, "pad": PAD, "random_erasing": 0.5, "color_jitter": 0.5}
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (64, H, W, 3), dtype=np.uint8))
    aug = BatchAugment(cfg)
    assert torch.equal(aug(images, (0, 1, 2, 0)), aug(images, (0, 1, 2, 0)))
    assert not torch.equal(aug(images, (0, 1, 2, 0)), aug(images, (0, 1, 3, 0)))
    test = BatchAugment(cfg, train=False)(images)
    ref = build_transforms(cfg, train=False)
    expected = torch.stack([ref(image=im)["image"] for im in images.numpy()])
    torch.testing.assert_close(test, expected, atol=1e-5, rtol=1e-5)
    assert aug(images, (0,)).is_contiguous()
    assert BatchAugment(cfg, channels_last=True)(images, (0,)).is_contiguous(memory_format=torch.channels_last)


def test_bad_input_and_unsupported_transform():
    aug = BatchAugment({"height": H, "width": W})
    with pytest.raises(ValueError, match="uint8"):
        aug(torch.zeros(2, H, W, 3), (0,))
    with pytest.raises(ValueError, match="cache built for another size"):
        aug(torch.zeros(2, H + 1, W, 3, dtype=torch.uint8), (0,))
    rrc = {"random_resized_crop": {"scale": [0.5, 1.0]}}
    assert not uses_tensor_pipeline(rrc) and uses_tensor_pipeline({})
    with pytest.raises(ValueError, match="albumentations"):
        BatchAugment(rrc)
