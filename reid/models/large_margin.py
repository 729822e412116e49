"""Large-margin softmax logits (L-Softmax: Liu et al., "Large-Margin Softmax Loss for Convolutional Neural
Networks", ICML 2016), computed by the large-margin classifier head (`reid.models.heads`).

The target-class logit ||W_y|| ||x|| cos(theta) is replaced by ||W_y|| ||x|| psi(theta) with
(eq. 6)  psi(theta) = (-1)^k cos(m theta) - 2k  for theta in [k pi/m, (k+1) pi/m], k in {0, .., m-1},
which is monotone decreasing and equals cos(theta) for m = 1. cos(m theta) is the Chebyshev polynomial T_m(cos theta)
(4c^3 - 3c for m = 3, eq. 7), so no acos is needed and the gradient stays finite at theta = 0. The paper's annealing
(section 5.1) mixes in the plain logit: f_y = (beta ||W|| ||x|| cos + ||W|| ||x|| psi) / (1 + beta); the schedule
of beta lives in the head. The loss on these logits is the softmax cross-entropy (`reid.losses`, on tensors).
"""
from __future__ import annotations

import math

import torch


def chebyshev(c: torch.Tensor, m: int) -> torch.Tensor:
    """cos(m theta) from c = cos(theta): T_0 = 1, T_1 = c, T_{n+1} = 2 c T_n - T_{n-1}."""
    t_prev, t = torch.ones_like(c), c
    if m == 0:
        return t_prev
    for _ in range(m - 1):
        t_prev, t = t, 2 * c * t - t_prev
    return t


def large_margin_logits(x: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, m: int = 3,
                        beta: float = 0.0, eps: float = 1e-8) -> torch.Tensor:
    """Logits W^T x (no bias) of x (B, d) against weight (C, d), with each row's target logit replaced by the
    (annealed) L-Softmax logit (beta ||W_y|| ||x|| cos + ||W_y|| ||x|| psi(theta)) / (1 + beta).

    m = 1 and any beta gives plain W^T x. Norms are clamped at `eps`; cos theta is clamped to [-1, 1].
    """
    if not isinstance(m, int) or m < 1:
        raise ValueError(f"large_margin_logits: m must be an integer >= 1, got {m!r}")
    if beta < 0:
        raise ValueError(f"large_margin_logits: beta must be >= 0, got {beta}")
    if x.ndim != 2 or weight.ndim != 2 or x.shape[1] != weight.shape[1]:
        raise ValueError(f"large_margin_logits: expected x (B, d) and weight (C, d), got {tuple(x.shape)} and "
                         f"{tuple(weight.shape)}")
    if labels.shape != (x.shape[0],):
        raise ValueError(f"large_margin_logits: labels must have shape ({x.shape[0]},), got {tuple(labels.shape)}")
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= weight.shape[0]):
        raise ValueError(f"large_margin_logits: labels must be in [0, {weight.shape[0] - 1}], got "
                         f"[{int(labels.min())}, {int(labels.max())}]")
    logits = x @ weight.T
    w_norm = weight.norm(dim=1).clamp_min(eps)[labels]
    x_norm = x.norm(dim=1).clamp_min(eps)
    target = logits.gather(1, labels[:, None]).squeeze(1)
    cos = (target / (w_norm * x_norm)).clamp(-1, 1)
    with torch.no_grad():
        # theta >= k pi / m  <=>  cos <= cos(k pi / m); k counts the bounds passed (k in 0..m-1; theta = pi -> m-1).
        bounds = torch.cos(torch.arange(1, m, device=x.device, dtype=cos.dtype) * math.pi / m)
        k = (cos[:, None] <= bounds[None]).sum(1).to(cos.dtype)
    sign = 1 - 2 * torch.remainder(k, 2)
    psi = sign * chebyshev(cos, m) - 2 * k
    new_target = (beta * target + w_norm * x_norm * psi) / (1 + beta)
    return logits.scatter(1, labels[:, None], new_target[:, None].to(logits.dtype))
