"""torchvision ResNets as feature-map backbones, with the re-ID `last_stride` option (1 doubles the map)."""
from __future__ import annotations

import torch
import torchvision

from . import BACKBONES


class ResNetBackbone(torch.nn.Module):
    def __init__(self, depth: int, last_stride: int = 1) -> None:
        super().__init__()
        if last_stride not in (1, 2):
            raise ValueError(f"last_stride must be 1 or 2, got {last_stride}")
        net = getattr(torchvision.models, f"resnet{depth}")(weights=None)
        if last_stride == 1:
            block = net.layer4[0]
            (block.conv2 if hasattr(block, "conv3") else block.conv1).stride = (1, 1)
            if block.downsample is not None:
                block.downsample[0].stride = (1, 1)
        self.torchvision_name = f"resnet{depth}"
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.out_channels = net.fc.in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


for _depth in (18, 34, 50, 101):
    BACKBONES.register(f"resnet{_depth}")(lambda last_stride=1, _d=_depth: ResNetBackbone(_d, last_stride))
