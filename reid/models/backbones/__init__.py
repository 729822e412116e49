"""Backbones: each returns its last feature map (B, C, h, w) and reports `out_channels`."""
from __future__ import annotations

from typing import Any

import torch

from ...registry import Registry

BACKBONES = Registry("backbone")


def build_backbone(name: str, pretrained: str = "none", **kwargs: Any) -> torch.nn.Module:
    from ..weights import load_pretrained

    model = BACKBONES.build(name, **kwargs)
    load_pretrained(model, name, pretrained)
    return model


from . import bn_inception, inception, nin, resnet, small  # noqa: E402,F401  (registration)
