"""Pairwise distances computed in chunks (float32 accumulation even for float16 features), CPU or CUDA."""
from __future__ import annotations

from typing import Iterator, Optional, Tuple

import numpy as np
import torch

from ..config.schema import CHOICES

METRICS = CHOICES["test.metric"]  # the distances the evaluation implements (the config's test.metric values)


def check_features(name: str, x: torch.Tensor) -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.ndim != 2:
        raise ValueError(f"{name} features must be 2-D (n, d), got shape {tuple(x.shape)}")
    if len(x) == 0:
        raise ValueError(f"{name} features are empty")
    for start in range(0, len(x), 65536):  # in chunks: no full-size copy of a 500k-item gallery
        if not torch.isfinite(x[start:start + 65536]).all():
            raise ValueError(f"{name} features contain NaN or inf")
    return x


def squared_norms(x: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
    """Row-wise squared norms in float32, computed in chunks (no float32 copy of a float16 gallery)."""
    return torch.cat([x[s:s + chunk].float().pow(2).sum(1) for s in range(0, len(x), chunk)])


def pairwise_distance(q: torch.Tensor, g: torch.Tensor, metric: str = "euclidean",
                      g_norms: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Squared Euclidean or cosine distance (1 - cos) between two blocks, in float32.

    `g_norms`: the gallery block's `squared_norms`, when the caller keeps them across query blocks (Euclidean).
    """
    q, g = q.float(), g.float()
    if metric == "euclidean":
        g_norms = g.pow(2).sum(1) if g_norms is None else g_norms
        # one GEMM that adds into the norms' sum: no separate passes over the block for -2 q.g and the sums
        return torch.addmm(q.pow(2).sum(1, keepdim=True) + g_norms[None], q, g.T, alpha=-2).clamp_min_(0)
    if metric == "cosine":
        qn = torch.nn.functional.normalize(q, dim=1)
        gn = torch.nn.functional.normalize(g, dim=1)
        return 1 - qn @ gn.T
    raise ValueError(f"metric: expected one of {METRICS}, got {metric!r}")


def paired_distance(a: torch.Tensor, b: torch.Tensor, metric: str = "euclidean",
                    b_norms: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Distance of each row of `a` to the same row of `b` (the same formula as `pairwise_distance`), in float32."""
    a, b = a.float(), b.float()
    if metric == "euclidean":
        b_norms = b.pow(2).sum(1) if b_norms is None else b_norms
        return (a.pow(2).sum(1) + b_norms - 2 * (a * b).sum(1)).clamp_min_(0)
    if metric == "cosine":
        return 1 - (torch.nn.functional.normalize(a, dim=1) * torch.nn.functional.normalize(b, dim=1)).sum(1)
    raise ValueError(f"metric: expected one of {METRICS}, got {metric!r}")


def iter_distance_chunks(qf: torch.Tensor, gf: torch.Tensor, metric: str = "euclidean", query_chunk: int = 256,
                         gallery_chunk: int = 65536) -> Iterator[Tuple[slice, slice, torch.Tensor]]:
    """Yield (query slice, gallery slice, distance block): only one block is held at a time."""
    for qs in range(0, len(qf), query_chunk):
        qsl = slice(qs, min(qs + query_chunk, len(qf)))
        q = qf[qsl].to(gf.device)
        for gs in range(0, len(gf), gallery_chunk):
            gsl = slice(gs, min(gs + gallery_chunk, len(gf)))
            yield qsl, gsl, pairwise_distance(q, gf[gsl], metric)


def distance_matrix(qf: torch.Tensor, gf: torch.Tensor, metric: str = "euclidean") -> torch.Tensor:
    """The full (Q, G) matrix, built block by block."""
    out = torch.empty(len(qf), len(gf), dtype=torch.float32, device=gf.device)
    for qsl, gsl, block in iter_distance_chunks(qf, gf, metric):
        out[qsl, gsl] = block
    return out


def rank_gallery(query_feature: torch.Tensor, gallery: torch.Tensor, topk: int,
                 metric: str = "euclidean") -> Tuple[np.ndarray, np.ndarray]:
    """Top-k gallery indices and float64 distances for one query, nearest first, ties by gallery index: the order
    of `reid.search` and the demo (`reid.evaluation.topk`), so a rank-list image and the demo agree on near-ties."""
    from .topk import exact_topk  # here, not at the top: topk computes its candidates with this module

    order, dist = exact_topk(query_feature.reshape(1, -1), gallery, topk, metric=metric)
    return order[0], dist[0]
