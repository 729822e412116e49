"""torchvision GoogLeNet (Szegedy et al. 2015; HORDE's backbone) and Inception-v3 (Szegedy et al. 2016) as
feature-map backbones without their classifiers or auxiliary heads. (BN-Inception, which torchvision lacks, is
written by hand in `bn_inception.py`.) Module names are torchvision's, so its ImageNet state dicts load as is.
"""
from __future__ import annotations

from typing import List

import torch
import torchvision
from torch import nn
from torch.nn import functional as F

from . import BACKBONES


class _Sequential(nn.Module):
    """Runs the named children of a torchvision network in order."""

    _names: List[str]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in self._names:
            x = getattr(self, name)(x)
        return x


@BACKBONES.register("googlenet")
class GoogLeNetBackbone(_Sequential):
    """GoogLeNet up to inception5b (1024 channels, stride 32; 16 with last_stride=1, which drops maxpool4)."""

    def __init__(self, last_stride: int = 2) -> None:
        super().__init__()
        net = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=True)
        self._names = ["conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a", "inception3b", "maxpool3",
                       "inception4a", "inception4b", "inception4c", "inception4d", "inception4e", "maxpool4",
                       "inception5a", "inception5b"]
        for name in self._names:
            setattr(self, name, getattr(net, name))
        if last_stride == 1:
            self.maxpool4 = nn.Identity()
        self.out_channels = 1024


class _ReductionStride1(nn.Module):
    """Inception-v3's last grid reduction (Mixed_7a) run at stride 1: its two strided 3x3 convolutions get stride 1
    and padding 1 and the pooling branch a 3x3/1 max-pool with padding 1, so the 17x17-style grid keeps its size.
    The convolution modules are torchvision's own, so pretrained weights still load."""

    BRANCHES = ("branch3x3_1", "branch3x3_2", "branch7x7x3_1", "branch7x7x3_2", "branch7x7x3_3", "branch7x7x3_4")

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        for name in self.BRANCHES:
            setattr(self, name, getattr(block, name))
        for conv in (self.branch3x3_2.conv, self.branch7x7x3_4.conv):
            conv.stride, conv.padding = (1, 1), (1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch3x3_2(self.branch3x3_1(x))
        b = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([a, b, F.max_pool2d(x, 3, 1, 1)], 1)


def _inception_v3_map_size(size: int, last_stride: int) -> int:
    """Side of Inception-v3's final map for an input side `size` (<= 0 means the input is too small)."""
    def valid(s: int, k: int = 3, stride: int = 1) -> int:  # unpadded convolution / pooling
        return (s - k) // stride + 1 if s >= k else 0

    s = valid(size, stride=2)                 # Conv2d_1a_3x3
    s = valid(s)                              # Conv2d_2a_3x3 (Conv2d_2b is padded)
    s = valid(valid(s, stride=2))             # maxpool1, Conv2d_4a_3x3 (Conv2d_3b is 1x1)
    s = valid(valid(s, stride=2), stride=2)   # maxpool2, Mixed_6a (Mixed_5x keep the size)
    return valid(s, stride=2) if last_stride == 2 else s  # Mixed_7a (Mixed_6x and 7b/7c keep the size)


@BACKBONES.register("inception_v3")
class InceptionV3Backbone(_Sequential):
    """Inception-v3 up to Mixed_7c (2048 channels). The default last_stride=2 is torchvision's network, which needs
    inputs of at least 75 px a side (a 128x64 crop is too narrow); last_stride=1 (Mixed_7a at stride 1, see
    `_ReductionStride1`; the re-ID config default) accepts 43 px, so 128x64 crops work. Smaller inputs raise a
    ValueError saying so."""

    def __init__(self, last_stride: int = 2) -> None:
        super().__init__()
        net = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=True)
        self._names = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1",
                       "Conv2d_4a_3x3", "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b",
                       "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"]
        for name in self._names:
            setattr(self, name, getattr(net, name))
        if last_stride == 1:
            self.Mixed_7a = _ReductionStride1(net.Mixed_7a)
        self.last_stride = last_stride
        self.min_size = next(s for s in range(1, 1000) if _inception_v3_map_size(s, last_stride) >= 1)
        self.out_channels = 2048

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if min(x.shape[-2:]) < self.min_size:
            raise ValueError(f"inception_v3 (last_stride={self.last_stride}) needs inputs of at least "
                             f"{self.min_size}x{self.min_size} pixels, got {tuple(x.shape[-2:])}"
                             + (" (last_stride=1 accepts 43 px)" if self.last_stride == 2 else ""))
        return super().forward(x)
