"""BN-Inception (Ioffe & Szegedy, ICML 2015), the DarkRank teacher, written by hand (torchvision has none).

Module names follow the widely used converted Caffe checkpoint (`conv1_7x7_s2`, `conv1_7x7_s2_bn`,
`inception_3a_1x1`, ..., `inception_5b_pool_proj_bn`) so that its state dict loads as is (its `last_linear` is
dropped by the weight loader). Convolutions carry biases as in that checkpoint.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from torch import nn
from torch.nn import functional as F

from . import BACKBONES

# name: (in, 1x1, 3x3 reduce, 3x3, double reduce, double, pool kind, pool proj, stride)
BLOCKS: List[Tuple[str, int, int, int, int, int, int, str, int, int]] = [
    ("3a", 192, 64, 64, 64, 64, 96, "avg", 32, 1),
    ("3b", 256, 64, 64, 96, 64, 96, "avg", 64, 1),
    ("3c", 320, 0, 128, 160, 64, 96, "max", 0, 2),
    ("4a", 576, 224, 64, 96, 96, 128, "avg", 128, 1),
    ("4b", 576, 192, 96, 128, 96, 128, "avg", 128, 1),
    ("4c", 576, 160, 128, 160, 128, 160, "avg", 128, 1),
    ("4d", 608, 96, 128, 192, 160, 192, "avg", 128, 1),
    ("4e", 608, 0, 128, 192, 192, 256, "max", 0, 2),
    ("5a", 1056, 352, 192, 320, 160, 224, "avg", 128, 1),
    ("5b", 1024, 352, 192, 320, 192, 224, "max", 128, 1),
]


@BACKBONES.register("bn_inception")
class BNInception(nn.Module):
    def __init__(self, last_stride: int = 2) -> None:
        super().__init__()
        self._units: List[Tuple[str, str]] = []
        self._conv("conv1_7x7_s2", 3, 64, 7, 2, 3)
        self._conv("conv2_3x3_reduce", 64, 64, 1, 1, 0)
        self._conv("conv2_3x3", 64, 192, 3, 1, 1)
        self.blocks = []
        for name, cin, c1, r3, c3, rd, cd, pool, proj, stride in BLOCKS:
            if name == "4e" and last_stride == 1:
                stride = 1
            p = f"inception_{name}"
            if c1:
                self._conv(f"{p}_1x1", cin, c1, 1, 1, 0)
            self._conv(f"{p}_3x3_reduce", cin, r3, 1, 1, 0)
            self._conv(f"{p}_3x3", r3, c3, 3, stride, 1)
            self._conv(f"{p}_double_3x3_reduce", cin, rd, 1, 1, 0)
            self._conv(f"{p}_double_3x3_1", rd, cd, 3, 1, 1)
            self._conv(f"{p}_double_3x3_2", cd, cd, 3, stride, 1)
            if proj:
                self._conv(f"{p}_pool_proj", cin, proj, 1, 1, 0)
            self.blocks.append((p, bool(c1), pool, bool(proj), stride))
        self.out_channels = 1024

    def _conv(self, name: str, cin: int, cout: int, k: int, s: int, pad: int) -> None:
        setattr(self, name, nn.Conv2d(cin, cout, k, s, pad))
        setattr(self, f"{name}_bn", nn.BatchNorm2d(cout, eps=1e-5))

    def _cbr(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return F.relu(getattr(self, f"{name}_bn")(getattr(self, name)(x)), inplace=True)

    def _block(self, x: torch.Tensor, p: str, has_1x1: bool, pool: str, has_proj: bool, stride: int):
        outs = []
        if has_1x1:
            outs.append(self._cbr(f"{p}_1x1", x))
        outs.append(self._cbr(f"{p}_3x3", self._cbr(f"{p}_3x3_reduce", x)))
        d = self._cbr(f"{p}_double_3x3_reduce", x)
        outs.append(self._cbr(f"{p}_double_3x3_2", self._cbr(f"{p}_double_3x3_1", d)))
        if stride == 2:
            pooled = F.max_pool2d(x, 3, 2, ceil_mode=True)  # Caffe's pooling, as in the checkpoint
            if pooled.shape[-2:] != outs[-1].shape[-2:]:  # odd sizes (e.g. 224x112 input): pad like the convs
                pooled = F.max_pool2d(x, 3, 2, padding=1)
        elif pool == "avg":
            pooled = F.avg_pool2d(x, 3, 1, 1, ceil_mode=True, count_include_pad=True)
        else:
            pooled = F.max_pool2d(x, 3, 1, 1, ceil_mode=True)
        outs.append(self._cbr(f"{p}_pool_proj", pooled) if has_proj else pooled)
        return torch.cat(outs, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(self._cbr("conv1_7x7_s2", x), 3, 2, ceil_mode=True)
        x = self._cbr("conv2_3x3", self._cbr("conv2_3x3_reduce", x))
        x = F.max_pool2d(x, 3, 2, ceil_mode=True)
        for p, has_1x1, pool, has_proj, stride in self.blocks:
            x = self._block(x, p, has_1x1, pool, has_proj, stride)
        return x
