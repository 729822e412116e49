"""The HRAML encoder (Gu): a multilayer perceptron of tanh units, weights drawn from U[-0.2, 0.2], zero biases.

Every layer, the output layer included, is Linear -> tanh as in the paper; the HRAML loss L2-normalises the
output before comparing squared distances with the label distances (reid.losses.hraml).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class HRAMLEncoder(nn.Module):
    """MLP in_features -> hidden... -> out_features, tanh after each layer."""

    def __init__(self, in_features: int, hidden: Sequence[int] = (256,), out_features: int = 64,
                 init_range: float = 0.2) -> None:
        super().__init__()
        dims = [in_features, *hidden, out_features]
        if any(not isinstance(d, int) or d < 1 for d in dims):
            raise ValueError(f"HRAMLEncoder: layer sizes must be positive integers, got {dims}")
        if init_range <= 0:
            raise ValueError(f"HRAMLEncoder: init_range must be > 0, got {init_range}")
        layers = []
        for a, b in zip(dims[:-1], dims[1:]):
            linear = nn.Linear(a, b)
            nn.init.uniform_(linear.weight, -init_range, init_range)
            nn.init.zeros_(linear.bias)
            layers += [linear, nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.in_features, self.out_features = in_features, out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"HRAMLEncoder: expected input (B, {self.in_features}), got {tuple(x.shape)}")
        return self.net(x)
