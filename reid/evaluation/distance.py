"""Pairwise distances computed in chunks (float32 accumulation even for float16 features), CPU or CUDA."""
from __future__ import annotations

from typing import Iterator, Tuple

import torch

METRICS = ("euclidean", "cosine")


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


def pairwise_distance(q: torch.Tensor, g: torch.Tensor, metric: str = "euclidean") -> torch.Tensor:
    """Squared Euclidean or cosine distance (1 - cos) between two blocks, in float32."""
    q, g = q.float(), g.float()
    if metric == "euclidean":
        return (q.pow(2).sum(1, keepdim=True) + g.pow(2).sum(1)[None] - 2 * q @ g.T).clamp_min_(0)
    if metric == "cosine":
        qn = torch.nn.functional.normalize(q, dim=1)
        gn = torch.nn.functional.normalize(g, dim=1)
        return 1 - qn @ gn.T
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
