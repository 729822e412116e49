"""torchvision ResNets (He et al., CVPR 2016) as feature-map backbones: the stem and layer1-4, no fc.

`last_stride=1` (the default, common in re-ID) sets layer4's first block to stride 1, doubling the final map
(16x8 instead of 8x4 for a 256x128 input). Module names are torchvision's, so its ImageNet state dicts load as is.
"""
from __future__ import annotations

from typing import Callable

import torch
import torchvision

from . import BACKBONES


class ResNetBackbone(torch.nn.Module):
    def __init__(self, depth: int, last_stride: int = 1) -> None:
        super().__init__()
        if last_stride not in (1, 2):
            raise ValueError(f"resnet{depth}: last_stride must be 1 or 2, got {last_stride!r}")
        net = getattr(torchvision.models, f"resnet{depth}")(weights=None)
        if last_stride == 1:
            block = net.layer4[0]
            # torchvision's Bottleneck strides its 3x3 conv2; BasicBlock strides conv1
            (block.conv2 if hasattr(block, "conv3") else block.conv1).stride = (1, 1)
            block.downsample[0].stride = (1, 1)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.out_channels = net.fc.in_features
        self.depth = depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def _factory(depth: int) -> Callable[..., ResNetBackbone]:
    def build(last_stride: int = 1) -> ResNetBackbone:
        return ResNetBackbone(depth, last_stride)

    build.__name__ = build.__qualname__ = f"resnet{depth}"
    build.__doc__ = f"torchvision ResNet-{depth} feature map ({'512' if depth < 50 else '2048'} channels)."
    return build


for _depth in (18, 34, 50, 101):
    BACKBONES.register(f"resnet{_depth}")(_factory(_depth))
