"""The HRAML encoder (Gu): a multilayer perceptron with tanh units, weights U[-0.2, 0.2], zero biases."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class HRAMLEncoder(nn.Module):
    def __init__(self, in_features: int, hidden: Sequence[int] = (256,), out_features: int = 64,
                 init_range: float = 0.2) -> None:
        super().__init__()
        layers, dims = [], [in_features, *hidden, out_features]
        for a, b in zip(dims[:-1], dims[1:]):
            linear = nn.Linear(a, b)
            nn.init.uniform_(linear.weight, -init_range, init_range)
            nn.init.zeros_(linear.bias)
            layers += [linear, nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
