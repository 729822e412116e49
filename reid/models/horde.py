"""HORDE high-order regularizer branch (Jacob, Picard, Histace & Klein, "Metric Learning With HORDE: High-Order
Regularizer for Deep Embeddings", ICCV 2019).

On the backbone feature map x (B, c, h, w): phi_2 = (W_1^T x) * (W_2^T x) at every spatial position and
phi_k = phi_{k-1} * (W_k^T x) (the cascaded approximation of eq. 6), W_k 1x1 projections c -> d without bias, either
trainable (the released code) or frozen Random Maclaurin projections with +-1 entries (Kar & Karnick 2012); the
spatial mean is taken AFTER the products (the empirical high-order moment, eq. 8). Each order k = 2..K then has its
own linear embedding (no bias), an affine-free BatchNorm1d neck (`neck=True`, the default) and L2 normalisation;
the same metric loss is applied to every order.

The neck is our addition, neither in the paper nor in the released code (which L2-normalise the linear embedding
directly): it gives every order the same neck as order 1's BN-neck, minus the learnable scale. Without it
(`neck=False`, the previous behaviour of this module) the high-order embeddings trained from scratch with a
soft-margin batch-hard triplet collapse within ~50 steps (mean batch cosine 0.70 -> 0.98) and the regularizer
stops reaching the backbone; the paper avoids this with a pretrained GoogLeNet and contrastive / binomial losses.
At test time order 1 alone is used, or optionally all orders concatenated and compressed by PCA (`HighOrderPCA`).
"""
from __future__ import annotations

from typing import Any, List, Mapping, Optional, Sequence

import torch
from torch import nn
from torch.nn import functional as F

HORDE_KEYS = ("orders", "projection_dim", "embedding_dim", "trainable", "neck")


def horde_moments(feature_map: torch.Tensor, projections: Sequence[torch.Tensor]) -> List[torch.Tensor]:
    """High-order moments of orders 2..K with K = len(projections), each (B, d).

    feature_map: (B, c, h, w); projections: K tensors (d, c), W_k^T x being `projections[k] @ x` per position.
    Only the running product is kept, so memory stays at two (B, d, h, w) maps besides what autograd saves.
    """
    if feature_map.dim() != 4:
        raise ValueError(f"horde_moments: feature_map must be (B, c, h, w), got shape {tuple(feature_map.shape)}")
    if len(projections) < 2:
        raise ValueError(f"horde_moments: needs at least 2 projections (order 2), got {len(projections)}")
    c = feature_map.shape[1]
    d = projections[0].shape[0]
    for i, w in enumerate(projections):
        if w.dim() != 2 or w.shape != (d, c):
            raise ValueError(f"horde_moments: projection {i} must be ({d}, {c}) (proj_dim, feature channels), "
                             f"got {tuple(w.shape)}")

    def project(w: torch.Tensor) -> torch.Tensor:  # a 1x1 convolution without bias
        return F.conv2d(feature_map, w.to(feature_map.dtype)[:, :, None, None])

    moments, phi = [], project(projections[0])
    for w in projections[1:]:
        phi = phi * project(w)
        moments.append(phi.mean(dim=(2, 3)))
    return moments


class HordeHead(nn.Module):
    """The HORDE branch: K projections, K-1 per-order embeddings; forward returns K-1 normalised (B, e) tensors.

    orders = K (default 5: orders 2..5), projection_dim = d (default 8192), embedding_dim = e (default 512),
    trainable: learnable projections (initialised N(0, 1/c)) or frozen Random Maclaurin +-1 entries; neck: an
    affine-free BatchNorm1d per order before the L2 norm (False: the previous, un-necked embeddings)."""

    def __init__(self, in_channels: int, orders: int = 5, projection_dim: int = 8192, embedding_dim: int = 512,
                 trainable: bool = True, neck: bool = True) -> None:
        super().__init__()
        for key, value, low in (("orders", orders, 2), ("projection_dim", projection_dim, 1),
                                ("embedding_dim", embedding_dim, 1)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"model.horde.{key}: expected an integer >= {low}, got {value!r}")
        weights = []
        for _ in range(orders):
            if trainable:
                w = nn.Parameter(torch.randn(projection_dim, in_channels) / in_channels ** 0.5)
            else:  # Random Maclaurin: fixed Rademacher entries, never updated
                w = nn.Parameter(torch.randint(0, 2, (projection_dim, in_channels)).float() * 2 - 1,
                                 requires_grad=False)
            weights.append(w)
        self.projections = nn.ParameterList(weights)
        self.embeddings = nn.ModuleList(nn.Linear(projection_dim, embedding_dim, bias=False)
                                        for _ in range(orders - 1))
        if not isinstance(neck, bool):
            raise ValueError(f"model.horde.neck: expected true or false, got {neck!r}")
        # affine-free: the neck only centres and scales each dimension over the batch (no learnable direction change)
        self.necks = nn.ModuleList(nn.BatchNorm1d(embedding_dim, affine=False) if neck else nn.Identity()
                                   for _ in range(orders - 1))
        self.embedding_dim = embedding_dim

    @classmethod
    def from_config(cls, in_channels: int, cfg: Mapping[str, Any]) -> "HordeHead":
        unknown = sorted(set(cfg) - set(HORDE_KEYS))
        if unknown:
            raise ValueError(f"model.horde: unknown key(s) {', '.join(unknown)}; valid: {', '.join(HORDE_KEYS)}")
        return cls(in_channels, **dict(cfg))

    def forward(self, feature_map: torch.Tensor) -> List[torch.Tensor]:
        moments = horde_moments(feature_map, list(self.projections))
        return [F.normalize(n(e(m)), dim=1) for e, n, m in zip(self.embeddings, self.necks, moments)]


class HighOrderPCA:
    """Test-time compression of concatenated order embeddings to `dim` by PCA fitted on training features.

    fit(features (N, D)) stores the mean and the top `dim` right singular vectors of the centred data (float64 SVD);
    transform(features) projects and L2-normalises."""

    def __init__(self, dim: int) -> None:
        if int(dim) < 1:
            raise ValueError(f"HighOrderPCA: dim must be >= 1, got {dim}")
        self.dim = int(dim)
        self.mean: Optional[torch.Tensor] = None
        self.components: Optional[torch.Tensor] = None

    def fit(self, features: torch.Tensor) -> "HighOrderPCA":
        if features.dim() != 2:
            raise ValueError(f"HighOrderPCA.fit: features must be (N, D), got shape {tuple(features.shape)}")
        if self.dim > min(features.shape):
            raise ValueError(f"HighOrderPCA: dim {self.dim} exceeds min(n, d) of features {tuple(features.shape)}")
        x = features.double()
        self.mean = x.mean(0)
        _, _, v = torch.linalg.svd(x - self.mean, full_matrices=False)
        self.components = v[: self.dim]
        return self

    def transform(self, features: torch.Tensor) -> torch.Tensor:
        if self.components is None or self.mean is None:
            raise RuntimeError("HighOrderPCA: call fit() on training features first")
        if features.dim() != 2 or features.shape[1] != self.mean.shape[0]:
            raise ValueError(f"HighOrderPCA.transform: expected (N, {self.mean.shape[0]}) features, "
                             f"got {tuple(features.shape)}")
        out = (features.double() - self.mean.to(features.device)) @ self.components.to(features.device).T
        return F.normalize(out.to(features.dtype), dim=1)
