"""HRAML: relationship-alignment metric learning (Gu), the loss.

The objective aligns squared embedding distances with label distances:
    J = 1/4 sum_{pairs (i, j)} (D_ij^2 - g(y_i, y_j))^2,
D_ij the Euclidean distance of the L2-normalised outputs (so D^2 = 2 - 2 cos is in [0, 4]) and g = ||y_i - y_j||_1.

Targets (g, set by `target_scale`, never changed silently):
- integer identity labels (B,) are one-hot vectors, so g = 2 for different and 0 for equal identities: the optimum
  places identities on orthogonal directions (D^2 = 2). Used as is, as the paper does, whatever `target_scale`.
- vectors (B, d) (attributes, multi-label, float one-hot): `target_scale="none"` (the default, the paper's
  g = ||y_i - y_j||_1 as is: a float one-hot target gives the same g in {0, 2} as its integer label);
  `target_scale="range"` (our option for attribute vectors with entries in [0, 1], whose L1 distance reaches d > 4,
  beyond the range [0, 4] of D^2) rescales g by 4 / d, i.e. 4 x the fraction of differing binary attributes.

Differences from the paper: the paper sums over pairs drawn from each sample's nearest neighbours; here every pair
(i < j) of the batch is used and, by default, the pair terms are averaged (`reduction="mean"`) so the loss scale and
a good learning rate do not depend on the batch size; `reduction="sum"` is the paper's sum.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

from .base import ReIDLoss, pairwise_sq_dist, upcast
from .registry import LOSSES

_INT_TYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)
TARGET_SCALES = ("none", "range")


def _check_scale(target_scale: str) -> str:
    if target_scale not in TARGET_SCALES:
        raise ValueError(f"hraml: target_scale must be 'none' (the paper's L1 distance) or 'range' (rescaled into "
                         f"[0, 4] by 4 / d), got {target_scale!r}")
    return target_scale


def hraml_targets(targets: torch.Tensor, target_scale: str = "none") -> torch.Tensor:
    """Pairwise target squared distances g (B, B): 2 * [y_i != y_j] for labels; ||y_i - y_j||_1 for vectors,
    times 4 / d with target_scale="range"."""
    _check_scale(target_scale)
    if targets.ndim == 1 and targets.dtype in _INT_TYPES:
        return 2.0 * (targets[:, None] != targets[None]).float()
    if targets.ndim != 2:
        raise ValueError(f"hraml: targets must be integer labels (B,) or attribute vectors (B, d), got shape "
                         f"{tuple(targets.shape)} of {targets.dtype}")
    t = upcast(targets) if targets.is_floating_point() else targets.float()
    l1 = torch.cdist(t, t, p=1)
    if target_scale == "none":
        return l1
    if t.numel() and (float(t.min()) < 0 or float(t.max()) > 1):
        raise ValueError(f"hraml: with target_scale='range' attribute vectors must lie in [0, 1] (rescaling assumes "
                         f"an L1 distance of at most d), got values in [{float(t.min())}, {float(t.max())}]")
    return l1 * (4.0 / t.shape[1])


def hraml_loss(embeddings: torch.Tensor, targets: torch.Tensor, reduction: str = "mean",
               target_scale: str = "none") -> torch.Tensor:
    """J = 1/4 sum_{i<j} (||u_i - u_j||^2 - g_ij)^2 over L2-normalised embeddings u (mean over pairs by default);
    g from `hraml_targets(targets, target_scale)`."""
    if reduction not in ("mean", "sum"):
        raise ValueError(f"hraml: reduction must be 'mean' or 'sum', got {reduction!r}")
    if embeddings.ndim != 2:
        raise ValueError(f"hraml: embeddings must have shape (B, d), got {tuple(embeddings.shape)}")
    if len(targets) != len(embeddings):
        raise ValueError(f"hraml: {len(targets)} targets for {len(embeddings)} embeddings")
    u = F.normalize(upcast(embeddings), dim=1)
    d2 = pairwise_sq_dist(u)
    g = hraml_targets(targets.to(u.device), target_scale).to(d2.dtype)
    iu = torch.triu_indices(len(u), len(u), 1, device=u.device)
    terms = 0.25 * (d2[iu[0], iu[1]] - g[iu[0], iu[1]]).pow(2)
    if terms.numel() == 0:  # a single sample has no pair
        return u.sum() * 0
    return terms.mean() if reduction == "mean" else terms.sum()


@LOSSES.register("hraml")
class HRAMLLoss(ReIDLoss):
    """`hraml_loss` on the model's normalised output; with `target: attributes` in a CombinedLoss term it aligns
    with the batch's attribute vectors instead of the identity labels (`target_scale: range` to rescale their L1
    distances into [0, 4])."""

    def __init__(self, reduction: str = "mean", target_scale: str = "none") -> None:
        super().__init__()
        if reduction not in ("mean", "sum"):
            raise ValueError(f"hraml: reduction must be 'mean' or 'sum', got {reduction!r}")
        self.reduction, self.target_scale = reduction, _check_scale(target_scale)

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor, teacher: object = None) -> torch.Tensor:
        return hraml_loss(inputs, labels, self.reduction, self.target_scale)
