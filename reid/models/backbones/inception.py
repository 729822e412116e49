"""torchvision GoogLeNet (HORDE's backbone) and Inception-v3 as feature-map backbones."""
from __future__ import annotations

import torch
import torchvision

from . import BACKBONES


class GoogLeNetBackbone(torch.nn.Module):
    torchvision_name = "googlenet"

    def __init__(self, last_stride: int = 2) -> None:
        super().__init__()
        net = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=True)
        names = ["conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a", "inception3b", "maxpool3",
                 "inception4a", "inception4b", "inception4c", "inception4d", "inception4e", "maxpool4",
                 "inception5a", "inception5b"]
        for n in names:
            setattr(self, n, getattr(net, n))
        if last_stride == 1:
            self.maxpool4 = torch.nn.Identity()
        self._names = names
        self.out_channels = 1024

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for n in self._names:
            x = getattr(self, n)(x)
        return x


class InceptionV3Backbone(torch.nn.Module):
    torchvision_name = "inception_v3"
    MIN_SIZE = 75

    def __init__(self, last_stride: int = 2) -> None:
        super().__init__()
        net = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=True)
        names = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
                 "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
                 "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"]
        for n in names:
            setattr(self, n, getattr(net, n))
        self._names = names
        self.out_channels = 2048

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if min(x.shape[-2:]) < self.MIN_SIZE:
            raise ValueError(f"inception_v3 needs inputs of at least {self.MIN_SIZE}x{self.MIN_SIZE} pixels, "
                             f"got {tuple(x.shape[-2:])}")
        for n in self._names:
            x = getattr(self, n)(x)
        return x


BACKBONES.register("googlenet")(GoogLeNetBackbone)
BACKBONES.register("inception_v3")(InceptionV3Backbone)
