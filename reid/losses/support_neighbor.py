"""Support Neighbor loss (Li, Lin, Jiang, Wang, Luo, MM 2018: "Support Neighbor Loss for Person Re-Identification").

For every anchor of a P x K batch, its K nearest other samples form the support set, with positives P_i and
negatives N_i. Separation (eq. 3/4): -log(sum_{P_i} exp(-sigma D) / sum_{P_i u N_i} exp(-sigma D)), computed as a
difference of masked log-sum-exps (0 when N_i is empty). Squeeze (eq. 5): max - min distance over the positive
neighbours, weighted by lambda. Loss: mean over anchors of separation + lambda * squeeze.

Paper vs released code: D is Euclidean on L2-normalised features by default (the code; the appendix says squared:
`distance="squared"`); when no positive falls in the support set the code adds the nearest positive of the batch
(`fallback="nearest_positive"`, default; `"none"` skips the anchor's separation); the code replaces the squeeze by
the nearest-positive distance, which we treat as a bug: `squeeze="paper"` (default) or `"code"`.
"""
from __future__ import annotations

import torch

from .base import ReIDLoss, pairwise_sq_dist, upcast
from .registry import LOSSES


def support_neighbor_loss(embeddings: torch.Tensor, labels: torch.Tensor, k: int = 10, sigma: float = 50.0,
                          lambda_squeeze: float = 0.1, distance: str = "euclidean",
                          fallback: str = "nearest_positive", squeeze: str = "paper") -> torch.Tensor:
    """Mean over anchors of separation (eqs. 3/4) + lambda_squeeze * squeeze (eq. 5) within each anchor's k nearest
    other samples; see the module docstring for the options."""
    if distance not in ("euclidean", "squared") or fallback not in ("nearest_positive", "none") \
            or squeeze not in ("paper", "code"):
        raise ValueError(f"support_neighbor: bad option distance={distance!r}, fallback={fallback!r}, "
                         f"squeeze={squeeze!r}")
    x = upcast(embeddings)
    n = len(x)
    d2 = pairwise_sq_dist(x)
    d = d2.clamp_min(1e-12).sqrt() if distance == "euclidean" else d2
    eye = torch.eye(n, dtype=torch.bool, device=x.device)
    inf = torch.full_like(d, float("inf"))
    others = torch.where(eye, inf, d)
    kk = min(int(k), n - 1)
    nearest = others.topk(kk, dim=1, largest=False).indices
    support = torch.zeros_like(eye).scatter_(1, nearest, True)
    same = (labels[:, None] == labels[None]) & ~eye
    pos = support & same
    neg = support & ~same
    if fallback == "nearest_positive":
        missing = ~pos.any(1) & same.any(1)
        nearest_pos = torch.where(same, d, inf).argmin(1)
        add = torch.zeros_like(pos).scatter_(1, nearest_pos[:, None], True) & missing[:, None]
        pos = pos | add
    logits = -sigma * d
    neg_inf = torch.full_like(d, float("-inf"))
    lse_pos = torch.logsumexp(torch.where(pos, logits, neg_inf), 1)
    lse_all = torch.logsumexp(torch.where(pos | neg, logits, neg_inf), 1)
    has = pos.any(1) & neg.any(1)
    separation = torch.where(has, lse_all - torch.where(has, lse_pos, torch.zeros_like(lse_pos)),
                             torch.zeros_like(lse_all))
    if squeeze == "paper":
        far = torch.where(pos, d, torch.zeros_like(d)).max(1).values
        near = torch.where(pos, d, inf).min(1).values
        squeeze_term = torch.where(pos.any(1), far - torch.where(pos.any(1), near, far), torch.zeros_like(far))
    else:
        squeeze_term = torch.where(same.any(1), torch.where(same, d, inf).min(1).values, torch.zeros_like(d[:, 0]))
    return (separation + lambda_squeeze * squeeze_term).mean()


@LOSSES.register("support_neighbor")
class SupportNeighborLoss(ReIDLoss):
    needs_positives = True

    def __init__(self, k: int = 10, sigma: float = 50.0, lambda_squeeze: float = 0.1, distance: str = "euclidean",
                 fallback: str = "nearest_positive", squeeze: str = "paper") -> None:
        super().__init__()
        self.params = dict(k=k, sigma=sigma, lambda_squeeze=lambda_squeeze, distance=distance, fallback=fallback,
                           squeeze=squeeze)
        support_neighbor_loss(torch.zeros(2, 2), torch.tensor([0, 1]), **self.params)  # validate options now

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor, teacher=None) -> torch.Tensor:
        return support_neighbor_loss(inputs, labels, **self.params)
