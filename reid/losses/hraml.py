"""HRAML relationship-alignment metric learning (Gu).

J = 1/4 sum_{pairs} (D_ij^2 - g(y_i, y_j))^2 with D the Euclidean distance of L2-normalised outputs (so D^2 is in
[0, 4]) and g = ||y_i - y_j||_1. Integer labels are one-hot (g in {0, 2}: orthogonal targets); attribute vectors
(floats in [0, 1], d of them) are rescaled into [0, 4] by g * 4 / d. The paper sums over pairs drawn from each
sample's nearest neighbours; we use every pair of the batch and, by default, their mean (`reduction="sum"` gives
the paper's sum) so the loss scale does not depend on the batch size.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

from .base import ReIDLoss, pairwise_sq_dist, upcast
from .registry import LOSSES


def hraml_targets(targets: torch.Tensor) -> torch.Tensor:
    if targets.dtype in (torch.int64, torch.int32, torch.int16, torch.uint8) and targets.ndim == 1:
        return 2.0 * (targets[:, None] != targets[None]).float()
    t = upcast(targets) if targets.is_floating_point() else targets.float()
    if t.ndim != 2:
        raise ValueError(f"hraml: targets must be integer labels (B,) or vectors (B, d), got shape {tuple(t.shape)}")
    return torch.cdist(t, t, p=1) * 4.0 / t.shape[1]


def hraml_loss(embeddings: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    u = F.normalize(upcast(embeddings), dim=1)
    d2 = pairwise_sq_dist(u)
    g = hraml_targets(targets)
    iu = torch.triu_indices(len(u), len(u), 1, device=u.device)
    terms = 0.25 * (d2[iu[0], iu[1]] - g[iu[0], iu[1]]).pow(2)
    if reduction == "mean":
        return terms.mean()
    if reduction == "sum":
        return terms.sum()
    raise ValueError(f"hraml: reduction must be mean or sum, got {reduction!r}")


@LOSSES.register("hraml")
class HRAMLLoss(ReIDLoss):
    """`target: labels` (identities, default) or `target: attributes` (the batch's attribute vectors)."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = reduction

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor, teacher=None) -> torch.Tensor:
        return hraml_loss(inputs, labels, self.reduction)
