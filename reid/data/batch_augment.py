"""Batched augmentation on uint8 image tensors, on the model's device: the fast twin of `build_transforms`.

Input: a batch of decoded images `(B, H, W, 3)` uint8 already at the pipeline's size (see `reid.data.cache`).
Training applies, per image and with the same parameter ranges and rates as the albumentations pipeline
(`reid.data.transforms.build_transforms`, the reference in the tests):
- zero padding by `pad` then a random `H x W` crop (offsets uniform in `[0, 2 * pad]`, as `A.RandomCrop`),
- horizontal flip with probability `hflip` (folded into the crop's column index: one gather for both),
- optional colour jitter (`color_jitter` = probability; brightness 0.8-1.2, contrast and saturation 0.85-1.15
  as `A.ColorJitter(0.2, 0.15, 0.15)`; applied in a fixed order where albumentations shuffles the order),
- ImageNet normalisation,
- random erasing with probability `random_erasing`: one rectangle of `int(H * U(0.2, 0.6))` x
  `int(W * U(0.2, 0.6))` at a uniform position, filled with one random colour uniform in [0, 1) in the
  normalised space (what `A.CoarseDropout(fill="random_uniform")` after `A.Normalize` does).
`random_resized_crop` has no batched form here: `uses_tensor_pipeline` says so and the per-sample pipeline runs.

Every random parameter is drawn on the CPU from `numpy.random.default_rng(seed_key)` (the trainer passes
(seed, epoch, step, rank)), so a batch's augmentation does not depend on the device nor on any global RNG, and a
resumed run replays it bit for bit. The output is `(B, 3, H, W)` float32.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np
import torch

from .transforms import resolve


def uses_tensor_pipeline(transform_cfg: Optional[Mapping[str, Any]]) -> bool:
    """True when every configured augmentation has a batched form here."""
    return not resolve(transform_cfg)["random_resized_crop"]


class BatchAugment:
    """Callable `(images uint8 (B, H, W, 3), seed_key) -> float32 (B, 3, H, W)` on the images' device."""

    def __init__(self, transform_cfg: Optional[Mapping[str, Any]] = None, train: bool = True,
                 channels_last: bool = False) -> None:
        c = resolve(transform_cfg)
        if train and c["random_resized_crop"]:
            raise ValueError("transforms.random_resized_crop has no batched form; use data.pipeline=albumentations")
        self.train = train
        self.height, self.width = int(c["height"]), int(c["width"])
        self.pad = int(c["pad"] or 0) if train else 0
        self.hflip = float(c["hflip"] or 0.0) if train else 0.0
        self.jitter = float(c["color_jitter"] or 0.0) if train else 0.0
        self.erasing = float(c["random_erasing"] or 0.0) if train else 0.0
        self.mean = torch.tensor(c["mean"], dtype=torch.float32) * 255.0
        self.std = torch.tensor(c["std"], dtype=torch.float32) * 255.0
        self.channels_last = channels_last

    def __call__(self, images: torch.Tensor, seed_key: Optional[Sequence[int]] = None) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[-1] != 3:
            raise ValueError(f"BatchAugment: expected uint8 (B, H, W, 3) images, got {tuple(images.shape)} "
                             f"{images.dtype}")
        if tuple(images.shape[1:3]) != (self.height, self.width):
            raise ValueError(f"BatchAugment: images are {tuple(images.shape[1:3])}, the pipeline expects "
                             f"{(self.height, self.width)} (a cache built for another size?)")
        device = images.device
        if self.train:
            rng = np.random.default_rng(list(seed_key) if seed_key is not None else None)
            images = self._crop_and_flip(images, rng)
            x = images.float()
            if self.jitter:
                x = self._color_jitter(x, rng)
        else:
            x = images.float()
        x = (x - self.mean.to(device)) / self.std.to(device)
        if self.train and self.erasing:
            x = self._erase(x, rng)
        x = x.permute(0, 3, 1, 2)  # NHWC storage seen as NCHW: channels_last strides for free
        return x if self.channels_last else x.contiguous()

    # Parameter draws are made for every image even where an operation is skipped, so that changing one rate does
    # not shift the draws of the others.
    def _crop_and_flip(self, images: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        b, h, w, _ = images.shape
        p = self.pad
        dy = rng.integers(0, 2 * p + 1, size=b)
        dx = rng.integers(0, 2 * p + 1, size=b)
        flip = rng.random(b) < self.hflip
        if p == 0 and not flip.any():
            return images
        if p:
            images = torch.nn.functional.pad(images, (0, 0, p, p, p, p))  # zeros, as A.PadIfNeeded(fill=0)
        device = images.device
        ar_h, ar_w = torch.arange(h, device=device), torch.arange(w, device=device)
        rows = torch.as_tensor(dy, device=device)[:, None] + ar_h
        cols_fwd = ar_w[None].expand(b, w)
        cols = torch.where(torch.as_tensor(flip, device=device)[:, None], cols_fwd.flip(1), cols_fwd)
        cols = cols + torch.as_tensor(dx, device=device)[:, None]
        batch = torch.arange(b, device=device)[:, None, None]
        return images[batch, rows[:, :, None], cols[:, None, :]]

    def _color_jitter(self, x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        b = x.shape[0]
        apply = rng.random(b) < self.jitter
        brightness = np.where(apply, rng.uniform(0.8, 1.2, b), 1.0)
        contrast = np.where(apply, rng.uniform(0.85, 1.15, b), 1.0)
        saturation = np.where(apply, rng.uniform(0.85, 1.15, b), 1.0)
        if not apply.any():
            return x
        shape = (b, 1, 1, 1)

        def factor(values: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(values, dtype=torch.float32, device=x.device).view(shape)

        gray_weights = torch.tensor([0.299, 0.587, 0.114], device=x.device)
        x = (x * factor(brightness)).clamp_(0, 255)
        mean_gray = (x * gray_weights).sum(-1, keepdim=True).mean(dim=(1, 2), keepdim=True)
        x = ((x - mean_gray) * factor(contrast) + mean_gray).clamp_(0, 255)
        gray = (x * gray_weights).sum(-1, keepdim=True)
        return ((x - gray) * factor(saturation) + gray).clamp_(0, 255)

    def _erase(self, x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        b, h, w, _ = x.shape
        apply = rng.random(b) < self.erasing
        eh = (h * rng.uniform(0.2, 0.6, b)).astype(np.int64)
        ew = (w * rng.uniform(0.2, 0.6, b)).astype(np.int64)
        y0 = rng.integers(0, h - eh + 1)
        x0 = rng.integers(0, w - ew + 1)
        fill = rng.random((b, 3), dtype=np.float32)
        if not apply.any():
            return x
        device = x.device

        def col(values: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(values, device=device)[:, None]

        ar_h, ar_w = torch.arange(h, device=device), torch.arange(w, device=device)
        in_rows = (ar_h >= col(y0)) & (ar_h < col(y0 + eh))
        in_cols = (ar_w >= col(x0)) & (ar_w < col(x0 + ew))
        mask = in_rows[:, :, None] & in_cols[:, None, :] & col(apply)[:, :, None]
        return torch.where(mask[..., None], torch.as_tensor(fill, device=device)[:, None, None, :], x)
