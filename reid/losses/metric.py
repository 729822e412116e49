"""Metric-learning losses on batch embeddings: triplet, contrastive (verification), N-pair, binomial deviance,
multi-similarity."""
from __future__ import annotations

import torch
from torch.nn import functional as F

from .base import ReIDLoss, pairwise_dist, same_label, upcast
from .registry import LOSSES


def _masks(labels: torch.Tensor):
    same = same_label(labels)
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return same & ~eye, ~same


@LOSSES.register("triplet")
class TripletLoss(ReIDLoss):
    """Triplet loss (Hermans et al. 2017) on Euclidean distances.

    mining: batch_hard (hardest positive and negative per anchor, the default) or batch_all (every valid triplet,
    averaged over the active ones with a non-zero loss); margin: a hinge with this margin, or "soft" for the
    soft-margin log(1 + exp(.)).
    """

    def __init__(self, margin: float | str = 0.3, mining: str = "batch_hard") -> None:
        super().__init__()
        if mining not in ("batch_hard", "batch_all"):
            raise ValueError(f"triplet: mining must be batch_hard or batch_all, got {mining!r}")
        if margin != "soft" and not isinstance(margin, (int, float)):
            raise ValueError(f"triplet: margin must be a number or 'soft', got {margin!r}")
        self.margin, self.mining = margin, mining

    def _hinge(self, x: torch.Tensor) -> torch.Tensor:
        return F.softplus(x) if self.margin == "soft" else F.relu(x + float(self.margin))

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor, teacher=None) -> torch.Tensor:
        d = pairwise_dist(upcast(inputs))
        pos, neg = _masks(labels)
        if self.mining == "batch_hard":
            hardest_pos = torch.where(pos, d, torch.zeros_like(d)).max(1).values
            hardest_neg = torch.where(neg, d, torch.full_like(d, float("inf"))).min(1).values
            valid = pos.any(1) & neg.any(1)
            if not valid.any():
                return inputs.sum() * 0
            return self._hinge(hardest_pos[valid] - hardest_neg[valid]).mean()
        losses = self._hinge(d[:, :, None] - d[:, None, :])  # [a, p, n]
        valid = pos[:, :, None] & neg[:, None, :]
        values = losses[valid]
        active = values[values > 1e-12]
        return active.mean() if len(active) else values.sum() * 0


@LOSSES.register("contrastive")
class ContrastiveLoss(ReIDLoss):
    """Contrastive / verification loss (Hadsell et al. 2006) on Euclidean distances, mean over all pairs:
    positives relu(d - pos_margin)^2, negatives relu(neg_margin - d)^2 (DarkRank's verification loss uses a
    negative margin of 0.9)."""

    def __init__(self, pos_margin: float = 0.0, neg_margin: float = 1.0) -> None:
        super().__init__()
        self.pos_margin, self.neg_margin = float(pos_margin), float(neg_margin)

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor, teacher=None) -> torch.Tensor:
        d = pairwise_dist(upcast(inputs))
        pos, neg = _masks(labels)
        loss = torch.where(pos, F.relu(d - self.pos_margin).pow(2), F.relu(self.neg_margin - d).pow(2))
        pairs = pos | neg
        return loss[pairs].mean()


@LOSSES.register("npair")
class NPairLoss(ReIDLoss):
    """Multi-class N-pair loss (Sohn, NIPS 2016): per class the first two images of the batch form an
    (anchor, positive) pair; softmax cross-entropy of each anchor against all positives, plus the paper's L2
    penalty on the embeddings (l2_reg, 0.002 in the paper)."""

    default_input = "embedding"

    def __init__(self, l2_reg: float = 0.002) -> None:
        super().__init__()
        self.l2_reg = float(l2_reg)

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor, teacher=None) -> torch.Tensor:
        x = upcast(inputs)
        anchors, positives = [], []
        for c in torch.unique(labels):
            idx = torch.nonzero(labels == c).flatten()
            if len(idx) >= 2:
                anchors.append(idx[0])
                positives.append(idx[1])
        if len(anchors) < 2:
            raise ValueError("npair: needs at least 2 classes with 2 or more images in the batch")
        a, p = x[torch.stack(anchors)], x[torch.stack(positives)]
        logits = a @ p.T
        loss = F.cross_entropy(logits, torch.arange(len(a), device=x.device))
        return loss + self.l2_reg * (a.pow(2).sum(1).mean() + p.pow(2).sum(1).mean())


@LOSSES.register("binomial_deviance")
class BinomialDevianceLoss(ReIDLoss):
    """Binomial deviance (Yi et al. 2014) on cosine similarity, in HORDE's form: mean over positive pairs of
    log(1 + exp(-alpha (s - beta))) plus mean over negative pairs of log(1 + exp(alpha C (s - beta)))."""

    def __init__(self, alpha: float = 2.0, beta: float = 0.5, cost: float = 25.0) -> None:
        super().__init__()
        self.alpha, self.beta, self.cost = float(alpha), float(beta), float(cost)

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor, teacher=None) -> torch.Tensor:
        x = F.normalize(upcast(inputs), dim=1)
        s = x @ x.T
        pos, neg = _masks(labels)
        loss = inputs.sum() * 0
        if pos.any():
            loss = loss + F.softplus(-self.alpha * (s[pos] - self.beta)).mean()
        if neg.any():
            loss = loss + F.softplus(self.alpha * self.cost * (s[neg] - self.beta)).mean()
        return loss


@LOSSES.register("multi_similarity")
class MultiSimilarityLoss(ReIDLoss):
    """Multi-similarity loss (Wang et al., CVPR 2019) with its pair mining (epsilon), on cosine similarity:
    per anchor 1/alpha log(1 + sum_P exp(-alpha (s - lam))) + 1/beta log(1 + sum_N exp(beta (s - lam))).
    Defaults follow the authors' code: alpha 2, beta 50, lam 0.5, epsilon 0.1."""

    def __init__(self, alpha: float = 2.0, beta: float = 50.0, lam: float = 0.5, epsilon: float = 0.1) -> None:
        super().__init__()
        self.alpha, self.beta, self.lam, self.epsilon = float(alpha), float(beta), float(lam), float(epsilon)

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor, teacher=None) -> torch.Tensor:
        x = F.normalize(upcast(inputs), dim=1)
        s = x @ x.T
        pos, neg = _masks(labels)
        inf = torch.full_like(s, float("inf"))
        min_pos = torch.where(pos, s, inf).min(1, keepdim=True).values
        max_neg = torch.where(neg, s, -inf).max(1, keepdim=True).values
        keep_neg = neg & (s + self.epsilon > min_pos)
        keep_pos = pos & (s - self.epsilon < max_neg)
        zero = torch.zeros_like(s[:, :1])
        pos_terms = torch.where(keep_pos, -self.alpha * (s - self.lam), -inf)
        neg_terms = torch.where(keep_neg, self.beta * (s - self.lam), -inf)
        # log(1 + sum exp(t)) = logsumexp([0, t...]); anchors with nothing mined contribute 0.
        lp = torch.logsumexp(torch.cat([zero, pos_terms], 1), 1) / self.alpha
        ln = torch.logsumexp(torch.cat([zero, neg_terms], 1), 1) / self.beta
        return (lp + ln).mean()
