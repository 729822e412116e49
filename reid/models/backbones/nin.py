"""Network in Network with batch normalisation (Lin et al. 2014; NIN-BN is DarkRank's student).

Four mlpconv blocks (a spatial conv then two 1x1 convs, each conv -> BN -> ReLU) separated by max-pooling. The
exact student configuration of the DarkRank paper is not published: we follow the ImageNet NIN (a strided first
conv: 7x7 stride 4 instead of 11x11 for 256x128 crops; widths 96-192-384-1024 with a 3x3 second block) sized to
run about 3x faster than BN-Inception, the speed ratio the paper reports.
"""
from __future__ import annotations

import torch
from torch import nn

from . import BACKBONES


def _mlpconv(cin: int, cout: int, k: int, stride: int) -> nn.Sequential:
    """An mlpconv block: a k x k convolution then two 1x1 convolutions ("micro network"), each conv -> BN -> ReLU."""
    layers: list = []
    for a, b, kk, s in [(cin, cout, k, stride), (cout, cout, 1, 1), (cout, cout, 1, 1)]:
        layers += [nn.Conv2d(a, b, kk, s, kk // 2, bias=False), nn.BatchNorm2d(b), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


@BACKBONES.register("nin_bn")
class NINBN(nn.Module):
    """NIN-BN feature extractor (1024 channels; stride 32, or 16 with last_stride=1 which drops the third pool)."""

    def __init__(self, last_stride: int = 2) -> None:
        super().__init__()
        self.block1 = _mlpconv(3, 96, 7, 4)
        self.pool1 = nn.MaxPool2d(3, 2, 1)
        self.block2 = _mlpconv(96, 192, 3, 1)
        self.pool2 = nn.MaxPool2d(3, 2, 1)
        self.block3 = _mlpconv(192, 384, 3, 1)
        self.pool3 = nn.MaxPool2d(3, 2, 1) if last_stride == 2 else nn.Identity()
        self.block4 = _mlpconv(384, 1024, 3, 1)
        self.out_channels = 1024

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.block1(x))
        x = self.pool2(self.block2(x))
        return self.block4(self.pool3(self.block3(x)))
