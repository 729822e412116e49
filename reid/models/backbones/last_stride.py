"""The re-ID "last stride" on networks without a stride argument: the last down-sampling run at stride 1.

Two ways to get the doubled final map (Sun et al., PCB, ECCV 2018; Luo et al., Bag of Tricks, 2019):
- `undilated`: the last stage's strided convolutions run at stride 1 with the same weights and padding, what our
  ResNets do (the later layers see a 2x larger map, ~4x their cost);
- `dilated`: timm's `output_stride=16`, which keeps the stride-2 network's receptive field by dilating every later
  convolution; on CPU, dilated *depthwise* convolutions are the slow path (Lite0 at 128x64, 64 images: 1.32 s per
  step against 0.88 s undilated with torch 2.14, ~40 s with the build of an earlier measurement; BENCHMARKS.md
  "Last stride").
"""
from __future__ import annotations

import torch

LAST_STRIDE_MODES = ("undilated", "dilated")


def undilate_last_stride(net: torch.nn.Module) -> str:
    """Set the last down-sampling of `net` to stride 1 without dilation (weights and padding unchanged): every
    strided convolution of the stage that holds the last one (its first two name components: `blocks.5` in an
    EfficientNet, `layer4.0` in a ResNet, whose shortcut is strided too). Returns the stage's name."""
    strided = [(name, m) for name, m in net.named_modules()
               if isinstance(m, torch.nn.Conv2d) and max(m.stride) > 1]
    if len(strided) < 2:  # the stem alone: nothing after it to keep at stride 1
        raise ValueError("last_stride=1: the network has no strided convolution after its stem")
    stage = ".".join(strided[-1][0].split(".")[:2])
    for name, conv in strided:
        if name == stage or name.startswith(stage + "."):
            conv.stride = (1, 1)
    return stage


def has_depthwise(net: torch.nn.Module) -> bool:
    """Whether `net` uses depthwise convolutions (where dilation is the slow path on CPU)."""
    return any(isinstance(m, torch.nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels
               for m in net.modules())
