"""A small residual CNN (about 1.2M parameters) for CPU training: the synthetic default's backbone and the tests'.

A 3x3/2 stem then four stages of one residual basic block each (He et al., CVPR 2016), widths 32-64-128-256 and
strides 1-2-2-last_stride: a 128x64 input gives an 8x4 map (16x8 with last_stride=1), 256 channels.
'small_half' halves every width (about 1/4 of the compute): the CPU DarkRank student.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from . import BACKBONES


def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class BasicBlock(nn.Module):
    """relu(BN(conv(relu(BN(conv(x))))) + shortcut(x)), a 1x1 projection shortcut when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = conv_bn(cin, cout, 3, stride)
        self.conv2 = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.shortcut = (nn.Identity() if stride == 1 and cin == cout else
                         nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


@BACKBONES.register("small")
class SmallNet(nn.Module):
    """The small CPU backbone (registered as 'small')."""

    def __init__(self, widths: Sequence[int] = (32, 64, 128, 256), last_stride: int = 2) -> None:
        super().__init__()
        self.stem = conv_bn(3, widths[0], 3, 2)
        strides = (1, 2, 2, last_stride)
        stages, cin = [], widths[0]
        for w, s in zip(widths, strides):
            stages.append(BasicBlock(cin, w, s))
            cin = w
        self.stages = nn.Sequential(*stages)
        self.out_channels = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))


@BACKBONES.register("small_half")
def small_half(last_stride: int = 2) -> SmallNet:
    """The small CNN at half width (16-32-64-128 channels): a cheaper student for the CPU distillation study."""
    return SmallNet((16, 32, 64, 128), last_stride)
