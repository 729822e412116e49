"""Density adaptivity regularizer (Li et al., IEEE TMM 2019: "Density Adaptive Metric Learning" / "Deep metric
learning with density adaptivity"). No public code exists.

Per class c present in the batch with at least two images, D_c = mean_i ||f_i - mu_c||^2 (eq. 5, differentiable
through the class mean). With a learnable target density alpha_c per training class (initialised to 0.5) and the
original density D0_c measured once on pre-embedding features:
    L_DA = (1/C) sum_c (D_c - alpha_c)^2 - (1/C) sum_c alpha_c
           + (1/C^2) sum_{i,j} (D0_j^eta alpha_i - D0_i^eta alpha_j)^2          (eq. 8)
over the C classes of the batch (`normalize="batch"`, the default: eq. 8 sums over the batch's classes) or with
C = the number of training classes (`normalize="all"`; eq. 6's "1/C" may be read so, which weights each class
num_classes / batch classes times less). The module adds lam * L_DA (lambda = 10) to a base metric loss.

Bases (`base`, `base_distance`): the paper's contrastive base is D for positives and max(0, 1 - D) for negatives
and its triplet base [1 + D_ap - D_an]_+, with D the SQUARED Euclidean distance: `base_distance="squared"`, the
default, with margin 1 for both unless base_params say otherwise. `base_distance="euclidean"` is the previous
behaviour of this module (Hadsell's squared hinge on the Euclidean distance; batch-hard triplet margin 0.3).
N-pair (inner products) ignores base_distance.

Initialisation: alpha_c = alpha_init (0.5, the paper) until `set_alpha` overwrites it with measured class
densities of the embedding (a checkpoint's or the network's at start: `loss.density_init`, see
reid.engine.density_setup). D0 (`set_d0`) is measured once before training on pre-embedding features, of the
network at start (the paper: its pretrained network) or of a given checkpoint (`loss.density_d0`). Our choice,
stated in the paper's spirit: D0 is divided by its mean over classes so that eta acts on relative densities.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

import torch
from torch import nn

from .base import ReIDLoss, base_needs_positives, upcast
from .registry import LOSSES


def class_densities(embeddings: torch.Tensor, labels: torch.Tensor):
    """(classes with >= 2 images, their D_c) in the batch."""
    classes, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    x = upcast(embeddings)
    sums = torch.zeros(len(classes), x.shape[1], device=x.device, dtype=x.dtype).index_add_(0, inverse, x)
    means = sums / counts[:, None]
    sq = (x - means[inverse]).pow(2).sum(1)
    dens = torch.zeros(len(classes), device=x.device, dtype=x.dtype).index_add_(0, inverse, sq) / counts
    keep = counts >= 2
    return classes[keep], dens[keep]


def density_adaptivity_loss(embeddings: torch.Tensor, labels: torch.Tensor, alpha: torch.Tensor,
                            d0: torch.Tensor, eta: float = 0.5, num_classes: Optional[int] = None) -> torch.Tensor:
    """L_DA of eq. 8 for one batch; `alpha` and `d0` are indexed by training class id. The sums run over the batch's
    classes with >= 2 images; C is their count, or `num_classes` when given (the "all training classes" reading)."""
    classes, dens = class_densities(embeddings, labels)
    if len(classes) == 0:
        return embeddings.sum() * 0 + alpha.sum() * 0
    a = alpha[classes]
    c = len(classes) if num_classes is None else int(num_classes)
    d0e = d0[classes].clamp_min(1e-12).pow(eta)
    cross = (d0e[None, :] * a[:, None] - d0e[:, None] * a[None, :]).pow(2).sum()
    return (dens - a).pow(2).sum() / c - a.sum() / c + cross / c ** 2


def compute_class_densities(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """D0: each training class's mean squared distance to its centre (classes with < 2 images get the mean)."""
    d0 = torch.full((num_classes,), float("nan"))
    classes, dens = class_densities(upcast(features).cpu(), labels.cpu())
    d0[classes] = dens
    fill = d0[~torch.isnan(d0)].mean() if (~torch.isnan(d0)).any() else torch.tensor(1.0)
    return torch.where(torch.isnan(d0), fill, d0)


@LOSSES.register("density_adaptivity")
class DensityAdaptivityLoss(ReIDLoss):
    """base metric loss (contrastive / triplet / npair, built from LOSSES with base_params) + lam * L_DA (eq. 8).

    base_distance: "squared" (the paper's bases, margin 1) | "euclidean" (the previous Hadsell / Euclidean bases);
    a `distance` or `margin` in base_params wins. normalize: "batch" (1/C over the batch's classes) | "all"
    (1/C over all num_classes training classes)."""

    @classmethod
    def term_needs_positives(cls, term: Mapping[str, Any]) -> bool:
        return base_needs_positives(cls, term)

    def __init__(self, num_classes: int, base: str = "contrastive", base_params: Optional[Mapping[str, Any]] = None,
                 lam: float = 10.0, eta: float = 0.5, alpha_init: float = 0.5, base_distance: str = "squared",
                 normalize: str = "batch") -> None:
        super().__init__()
        if base not in ("contrastive", "triplet", "npair"):
            raise ValueError(f"density_adaptivity: base must be contrastive, triplet or npair, got {base!r}")
        if base_distance not in ("squared", "euclidean"):
            raise ValueError(f"density_adaptivity: base_distance must be 'squared' or 'euclidean', got {base_distance!r}")
        if normalize not in ("batch", "all"):
            raise ValueError(f"density_adaptivity: normalize must be 'batch' or 'all', got {normalize!r}")
        params = dict(base_params or {})
        if base != "npair":
            params.setdefault("distance", base_distance)
            if base == "triplet" and params["distance"] == "squared":
                params.setdefault("margin", 1.0)  # the paper's triplet margin on squared distances
        self.base = LOSSES.build(base, **params)
        self.needs_positives = self.base.needs_positives
        self.alpha = nn.Parameter(torch.full((int(num_classes),), float(alpha_init)))
        self.register_buffer("d0", torch.full((int(num_classes),), float("nan")))
        self.lam, self.eta = float(lam), float(eta)
        self.num_classes, self.normalize = int(num_classes), normalize

    def set_alpha(self, densities: torch.Tensor) -> None:
        """Initialise the target densities alpha_c with measured class densities (num_classes,) of the embedding."""
        if densities.shape != self.alpha.shape:
            raise ValueError(f"density_adaptivity: alpha init has shape {tuple(densities.shape)}, expected "
                             f"{tuple(self.alpha.shape)}")
        if not torch.isfinite(densities).all() or (densities < 0).any():
            raise ValueError("density_adaptivity: measured densities for alpha must be finite and non-negative")
        with torch.no_grad():
            self.alpha.copy_(densities.to(self.alpha))

    def set_d0(self, d0: torch.Tensor) -> None:
        """Store the original class densities D0 (num_classes,), divided by their mean."""
        if d0.shape != self.d0.shape:
            raise ValueError(f"density_adaptivity: D0 has shape {tuple(d0.shape)}, expected {tuple(self.d0.shape)}")
        if not torch.isfinite(d0).all() or (d0 < 0).any() or d0.sum() <= 0:
            raise ValueError("density_adaptivity: D0 must be finite, non-negative and not all zero (per-class mean "
                             "squared distance to the class centre, from compute_class_densities)")
        self.d0.copy_((d0 / d0.mean()).to(self.d0))

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor, teacher=None) -> torch.Tensor:
        if torch.isnan(self.d0).any():
            raise RuntimeError("density_adaptivity: D0 was never measured; call set_d0 (the trainer does it "
                               "before the first epoch)")
        base = self.base(inputs, labels)
        c = self.num_classes if self.normalize == "all" else None
        return base + self.lam * density_adaptivity_loss(inputs, labels, self.alpha, self.d0, self.eta, c)
