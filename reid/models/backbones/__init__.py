"""Backbones: `forward(x)` returns the last feature map (B, C, h, w) and `out_channels` is C.

Every backbone takes `last_stride` (1 or 2), the stride of its last down-sampling stage: re-ID commonly uses 1,
which doubles the final map (Sun et al., PCB, ECCV 2018; Luo et al., Bag of Tricks, 2019).
"""
from __future__ import annotations

import inspect
from typing import Any

import torch

from ...registry import Registry

BACKBONES = Registry("backbone")


def build_backbone(name: str, pretrained: str = "none", **kwargs: Any) -> torch.nn.Module:
    """Build backbone `name` (see `BACKBONES.names()`, or `timm/<model>` with timm installed); `pretrained` is
    'none', 'imagenet' or a state-dict path."""
    from ..weights import load_pretrained

    if "last_stride" in kwargs and kwargs["last_stride"] not in (1, 2):
        raise ValueError(f"backbone '{name}': last_stride must be 1 or 2, got {kwargs['last_stride']!r}")
    if name.startswith(timm_backbone.PREFIX):
        timm_backbone.register_timm_backbone(name)
    builder = BACKBONES.get(name)
    options = {"last_stride_mode", "head_conv"} & set(kwargs)
    accepted = set(inspect.signature(builder).parameters)
    if options - accepted:
        key = sorted(options - accepted)[0]
        raise ValueError(f"backbone '{name}' takes no {key} (model.{key} applies to "
                         f"{', '.join(n for n in BACKBONES.names() if key in inspect.signature(BACKBONES.get(n)).parameters)}"
                         f"{' and timm/<model>' if key == 'last_stride_mode' else ''})")
    if name.startswith(timm_backbone.PREFIX) or getattr(builder, "loads_own_weights", False):
        # timm loads its own weights (and maps its own keys); the mobile backbones map their offline files
        return BACKBONES.build(name, pretrained=pretrained, **kwargs)
    model = BACKBONES.build(name, **kwargs)
    load_pretrained(model, name, pretrained)
    return model


from . import bn_inception, inception, mobile, nin, resnet, small, timm_backbone  # noqa: E402,F401  (registration)
