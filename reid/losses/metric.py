"""Metric-learning losses on batch embeddings: triplet, contrastive (verification), N-pair, binomial deviance,
multi-similarity."""
from __future__ import annotations

from typing import Tuple

import torch
from torch.nn import functional as F

from .base import ReIDLoss, check_batch, pairwise_dist, pairwise_sq_dist, same_label
from .registry import LOSSES


DISTANCES = ("euclidean", "squared")


def _check_distance(distance: str, name: str) -> str:
    if distance not in DISTANCES:
        raise ValueError(f"{name}: distance must be 'euclidean' or 'squared', got {distance!r}")
    return distance


def _distances(x: torch.Tensor, distance: str) -> torch.Tensor:
    """Euclidean (sqrt(clamp(d2, 1e-12))) or squared Euclidean pairwise distances."""
    return pairwise_sq_dist(x) if distance == "squared" else pairwise_dist(x)


def _masks(labels: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """(positive pairs without the diagonal, negative pairs)."""
    same = same_label(labels)
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return same & ~eye, ~same


@LOSSES.register("triplet")
class TripletLoss(ReIDLoss):
    """Triplet loss on Euclidean distances (Hermans, Beyer, Leibe, "In defense of the triplet loss", 2017, eq. 5).

    mining: batch_hard (per anchor the farthest positive and the nearest negative, mean over anchors that have
    both; the default) or batch_all (every valid triplet (a, p, n), averaged over the active ones with a non-zero
    loss, the paper's "BA!=0"); margin: the hinge [m + d_ap - d_an]_+ with this margin (0.3 by default), or "soft"
    for the soft margin log(1 + exp(d_ap - d_an)). Distances are sqrt(clamp(d2, 1e-12)): finite gradients for
    duplicates. distance="squared" uses squared Euclidean distances instead, [m + d_ap^2 - d_an^2]_+ (the triplet
    base of the density-adaptivity paper, Li et al. TMM 2019, with margin 1).
    """

    needs_positives = True

    def __init__(self, margin: float | str = 0.3, mining: str = "batch_hard", distance: str = "euclidean") -> None:
        super().__init__()
        self.distance = _check_distance(distance, "triplet")
        if mining not in ("batch_hard", "batch_all"):
            raise ValueError(f"triplet: mining must be batch_hard or batch_all, got {mining!r}")
        if margin != "soft" and (isinstance(margin, bool) or not isinstance(margin, (int, float)) or margin < 0):
            raise ValueError(f"triplet: margin must be a number >= 0 or 'soft', got {margin!r}")
        self.margin, self.mining = margin, mining

    def _hinge(self, x: torch.Tensor) -> torch.Tensor:
        return F.softplus(x) if self.margin == "soft" else F.relu(x + float(self.margin))

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor, teacher: object = None) -> torch.Tensor:
        d = _distances(check_batch(inputs, labels, "triplet"), self.distance)
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
    """Contrastive / verification loss (Hadsell et al., CVPR 2006, eq. 4) on Euclidean distances, mean over all
    ordered pairs (i != j): positives relu(d - pos_margin)^2, negatives relu(neg_margin - d)^2.

    The default negative margin 1 is the density-adaptivity paper's contrastive margin; DarkRank's verification loss
    is this loss with pos_margin 0 and neg_margin 0.9 (weight 5, on the normalised embedding; the DarkRank paper
    names it a verification loss on image pairs without giving its formula, and methods.md reads it as this
    contrastive loss). A positive margin > 0 stops pulling positives once they are that close (the double-margin
    variant).

    distance="squared": the density-adaptivity paper's contrastive base (Li et al. TMM 2019): with D the SQUARED
    Euclidean distance, positives cost relu(D - pos_margin) and negatives relu(neg_margin - D) (the hinge on the
    squared distance, not squared), margin 1."""

    needs_positives = True

    def __init__(self, pos_margin: float = 0.0, neg_margin: float = 1.0, distance: str = "euclidean") -> None:
        super().__init__()
        self.distance = _check_distance(distance, "contrastive")
        if not 0 <= pos_margin < neg_margin:
            raise ValueError(f"contrastive: need 0 <= pos_margin < neg_margin, got {pos_margin} and {neg_margin}")
        self.pos_margin, self.neg_margin = float(pos_margin), float(neg_margin)

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor, teacher: object = None) -> torch.Tensor:
        x = check_batch(inputs, labels, "contrastive")
        pos, neg = _masks(labels)
        if self.distance == "squared":
            d2 = pairwise_sq_dist(x)
            loss = torch.where(pos, F.relu(d2 - self.pos_margin), F.relu(self.neg_margin - d2))
        else:
            d = pairwise_dist(x)
            loss = torch.where(pos, F.relu(d - self.pos_margin).pow(2), F.relu(self.neg_margin - d).pow(2))
        pairs = pos | neg
        return loss[pairs].mean() if pairs.any() else loss.sum() * 0  # a single sample has no pair


@LOSSES.register("npair")
class NPairLoss(ReIDLoss):
    """Multi-class N-pair loss (Sohn, NIPS 2016, eq. 5 / 6) with the paper's L2 penalty on the embeddings.

    One N-pair tuple holds an (anchor, positive) pair of each of N classes; each anchor's loss is
    log(1 + sum_{j != i} exp(f_i^T f_j^+ - f_i^T f_i^+)), the softmax cross-entropy of the anchor against all N
    positives. A P x K batch is split into K // 2 tuples: tuple t pairs the (2t)-th and (2t+1)-th image of every class
    that has them (classes with fewer images skip it; tuples with fewer than 2 classes are dropped), so every image
    of an even K is used once. Loss = mean over all anchors + l2_reg * (mean ||f_a||^2 + mean ||f_p||^2)
    (l2_reg 0.002 in the paper). pairs="first" keeps the paper's single tuple (first two images per class).
    Reads the unnormalised `embedding` (the paper regularises its norm instead of normalising).
    """

    default_input = "embedding"
    needs_positives = True

    def __init__(self, l2_reg: float = 0.002, pairs: str = "all") -> None:
        super().__init__()
        if pairs not in ("all", "first"):
            raise ValueError(f"npair: pairs must be 'all' or 'first', got {pairs!r}")
        if l2_reg < 0:
            raise ValueError(f"npair: l2_reg must be >= 0, got {l2_reg}")
        self.l2_reg, self.pairs = float(l2_reg), pairs

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor, teacher: object = None) -> torch.Tensor:
        x = check_batch(inputs, labels, "npair")
        members = [torch.nonzero(labels == c).flatten() for c in torch.unique(labels)]
        num_tuples = 1 if self.pairs == "first" else max(len(m) for m in members) // 2
        anchor_losses, anchors, positives = [], [], []
        for t in range(num_tuples):
            a_idx = [m[2 * t] for m in members if len(m) >= 2 * t + 2]
            p_idx = [m[2 * t + 1] for m in members if len(m) >= 2 * t + 2]
            if len(a_idx) < 2:
                continue
            a, p = x[torch.stack(a_idx)], x[torch.stack(p_idx)]
            target = torch.arange(len(a), device=x.device)
            anchor_losses.append(F.cross_entropy(a @ p.T, target, reduction="none"))
            anchors.append(a)
            positives.append(p)
        if not anchor_losses:
            raise ValueError("npair: needs at least 2 classes with 2 or more images in the batch (use a P x K sampler "
                             "with K >= 2)")
        a, p = torch.cat(anchors), torch.cat(positives)
        reg = a.pow(2).sum(1).mean() + p.pow(2).sum(1).mean()
        return torch.cat(anchor_losses).mean() + self.l2_reg * reg


@LOSSES.register("binomial_deviance")
class BinomialDevianceLoss(ReIDLoss):
    """Binomial deviance (Yi et al., "Deep metric learning for person re-identification", ICPR 2014, eq. 2) on
    cosine similarity, in the form HORDE uses: with m = 1 for positive and m = -C for negative pairs, each pair costs
    log(1 + exp(-alpha (s - beta) m)), and the pair weights 1/n_pos and 1/n_neg make it the mean over positive pairs
    plus the mean over negative pairs (i != j). alpha 2, beta 0.5, C 25 as in the paper."""

    needs_positives = True

    def __init__(self, alpha: float = 2.0, beta: float = 0.5, cost: float = 25.0) -> None:
        super().__init__()
        if alpha <= 0 or cost <= 0:
            raise ValueError(f"binomial_deviance: alpha and cost must be > 0, got {alpha} and {cost}")
        self.alpha, self.beta, self.cost = float(alpha), float(beta), float(cost)

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor, teacher: object = None) -> torch.Tensor:
        x = F.normalize(check_batch(inputs, labels, "binomial_deviance"), dim=1)
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
    """Multi-similarity loss (Wang et al., CVPR 2019) on cosine similarity, mean over anchors.

    Mining (eq. 13, 14): a negative pair is kept when s_ik + epsilon > min over positives s_ij, a positive pair when
    s_ij - epsilon < max over negatives s_ik. Weighting (eq. 15): per anchor
    1/alpha log(1 + sum_P exp(-alpha (s - lam))) + 1/beta log(1 + sum_N exp(beta (s - lam))), computed as
    logsumexp with a zero entry (stable for large beta). Anchors with nothing mined contribute 0.
    Defaults alpha 2, beta 50, epsilon 0.1 as in the paper's experiments; lam = 0.5 is the margin of the authors'
    released configuration (the brief's reference also quotes lam = 1; pass lam=1.0 for that setting).
    """

    needs_positives = True

    def __init__(self, alpha: float = 2.0, beta: float = 50.0, lam: float = 0.5, epsilon: float = 0.1) -> None:
        super().__init__()
        if alpha <= 0 or beta <= 0 or epsilon < 0:
            raise ValueError(f"multi_similarity: need alpha > 0, beta > 0, epsilon >= 0, got {alpha}, {beta}, {epsilon}")
        self.alpha, self.beta, self.lam, self.epsilon = float(alpha), float(beta), float(lam), float(epsilon)

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor, teacher: object = None) -> torch.Tensor:
        x = F.normalize(check_batch(inputs, labels, "multi_similarity"), dim=1)
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
