"""HORDE high-order regularizer branch (Jacob et al., ICCV 2019).

On the backbone feature map x (B, c, h, w): phi_2 = (W_1^T x) * (W_2^T x) per spatial position and
phi_k = phi_{k-1} * (W_k^T x) (the cascade of eq. 6), W_k 1x1 projections c -> d without bias (trainable as in the
released code, or frozen Random Maclaurin +-1 entries); the spatial mean is taken AFTER the products (the
empirical moment, eq. 8); each order then has a linear embedding (no bias) and L2 normalisation.
"""
from __future__ import annotations

from typing import List, Sequence

import torch
from torch import nn
from torch.nn import functional as F


def horde_moments(feature_map: torch.Tensor, projections: Sequence[torch.Tensor]) -> List[torch.Tensor]:
    """Moments of orders 2..K (K = len(projections)): a list of (B, d) tensors."""
    if len(projections) < 2:
        raise ValueError(f"HORDE needs at least 2 projections, got {len(projections)}")
    projected = [torch.einsum("bchw,dc->bdhw", feature_map, w) for w in projections]
    out, phi = [], projected[0]
    for p in projected[1:]:
        phi = phi * p
        out.append(phi.mean(dim=(2, 3)))
    return out


class HordeHead(nn.Module):
    def __init__(self, in_channels: int, orders: int = 5, projection_dim: int = 8192, embedding_dim: int = 512,
                 trainable: bool = True) -> None:
        super().__init__()
        if orders < 2:
            raise ValueError(f"horde.orders must be >= 2, got {orders}")
        weights = []
        for _ in range(orders):
            if trainable:
                w = nn.Parameter(torch.randn(projection_dim, in_channels) / in_channels ** 0.5)
            else:  # Random Maclaurin: fixed +-1 entries
                w = nn.Parameter(torch.randint(0, 2, (projection_dim, in_channels)).float() * 2 - 1,
                                 requires_grad=False)
            weights.append(w)
        self.projections = nn.ParameterList(weights)
        self.embeddings = nn.ModuleList(nn.Linear(projection_dim, embedding_dim, bias=False)
                                        for _ in range(orders - 1))

    def forward(self, feature_map: torch.Tensor) -> List[torch.Tensor]:
        moments = horde_moments(feature_map, list(self.projections))
        return [F.normalize(e(m), dim=1) for e, m in zip(self.embeddings, moments)]


class HighOrderPCA:
    """Test-time compression of the concatenated order embeddings to `dim` by PCA fitted on training features."""

    def __init__(self, dim: int) -> None:
        self.dim = int(dim)
        self.mean: torch.Tensor | None = None
        self.components: torch.Tensor | None = None

    def fit(self, features: torch.Tensor) -> "HighOrderPCA":
        if self.dim > min(features.shape):
            raise ValueError(f"HighOrderPCA: dim {self.dim} exceeds min(n, d) of features {tuple(features.shape)}")
        x = features.double()
        self.mean = x.mean(0)
        _, _, v = torch.linalg.svd(x - self.mean, full_matrices=False)
        self.components = v[: self.dim]
        return self

    def transform(self, features: torch.Tensor) -> torch.Tensor:
        if self.components is None:
            raise RuntimeError("HighOrderPCA: call fit() on training features first")
        out = (features.double() - self.mean) @ self.components.T
        return F.normalize(out.to(features.dtype), dim=1)
