"""Large-margin softmax (Liu et al., ICML 2016), used by DarkRank with m = 3.

Target logit ||W_y|| ||x|| psi(theta) with psi(theta) = (-1)^k cos(m theta) - 2k for theta in [k pi/m, (k+1) pi/m]
(eq. 6 of the L-Softmax paper); cos(m theta) is the Chebyshev polynomial T_m(cos theta); k is found without
gradient by comparing cos theta with cos(k pi / m). Other classes keep W_j^T x (no bias). Training uses the
annealed target (beta ||W|| ||x|| cos + ||W|| ||x|| psi) / (1 + beta): beta starts at 1000 and decays as
1000 / (1 + 0.01 t) to a floor of 5 (our schedule; the paper only says it decays, and without it training does not
start). The margin applies in training only.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn


def chebyshev(c: torch.Tensor, m: int) -> torch.Tensor:
    """cos(m theta) from c = cos(theta) via the recurrence T_{n+1} = 2 c T_n - T_{n-1}."""
    t_prev, t = torch.ones_like(c), c
    if m == 0:
        return t_prev
    for _ in range(m - 1):
        t_prev, t = t, 2 * c * t - t_prev
    return t


def large_margin_logits(x: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, m: int = 3,
                        beta: float = 0.0, eps: float = 1e-8) -> torch.Tensor:
    """Logits W^T x with the target class replaced by the (annealed) large-margin logit."""
    logits = x @ weight.T
    w_norm = weight.norm(dim=1).clamp_min(eps)[labels]
    x_norm = x.norm(dim=1).clamp_min(eps)
    target = logits.gather(1, labels[:, None]).squeeze(1)
    cos = (target / (w_norm * x_norm)).clamp(-1, 1)
    with torch.no_grad():
        bounds = torch.cos(torch.arange(1, m + 1, device=x.device, dtype=cos.dtype) * math.pi / m)
        k = (cos[:, None] <= bounds[None]).sum(1).to(cos.dtype)  # theta >= k pi / m
    sign = 1 - 2 * torch.remainder(k, 2)
    psi = sign * chebyshev(cos, m) - 2 * k
    margin_logit = w_norm * x_norm * psi
    new_target = (beta * target + margin_logit) / (1 + beta)
    return logits.scatter(1, labels[:, None], new_target[:, None].to(logits.dtype))


class LargeMarginClassifier(nn.Module):
    def __init__(self, in_features: int, num_classes: int, margin: int = 3, beta_start: float = 1000.0,
                 beta_min: float = 5.0, beta_decay: float = 0.01) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, in_features))
        nn.init.xavier_uniform_(self.weight)
        self.margin, self.beta_start, self.beta_min, self.beta_decay = int(margin), beta_start, beta_min, beta_decay
        self.register_buffer("iteration", torch.zeros((), dtype=torch.long))

    @property
    def beta(self) -> float:
        return max(self.beta_min, self.beta_start / (1 + self.beta_decay * float(self.iteration)))

    def forward(self, x: torch.Tensor, labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        if not self.training or labels is None:
            return x @ self.weight.T
        beta = self.beta
        self.iteration += 1
        return large_margin_logits(x, self.weight, labels, self.margin, beta)
