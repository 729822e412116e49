"""Evaluation: exact CMC / mAP / mINP (streaming, distractor scale), protocols, k-reciprocal re-ranking.

The package owns ranking and distances: `evaluate` (`ranking.py`), the one distance formula (`distance.py`), the
one feature-extraction loop (`features.py`) and the protocol's roles of gallery items (`verification.py`)."""
from __future__ import annotations

from .distance import (check_features, distance_matrix, iter_distance_chunks, paired_distance,  # noqa: F401
                       pairwise_distance, rank_gallery, squared_norms)
from .features import embed, extract_features
from .metrics import RankAccumulator, average_precision, count_ranks  # noqa: F401
from .protocols import clustering_nmi, nmi, recall_at_k, single_shot_galleries
from .ranking import evaluate
from .report import EvaluationResult
from .rerank import iter_rerank_chunks, k_reciprocal_rerank

__all__ = ["evaluate", "EvaluationResult", "average_precision", "pairwise_distance", "distance_matrix",
           "iter_distance_chunks", "rank_gallery", "extract_features", "embed", "k_reciprocal_rerank",
           "iter_rerank_chunks", "recall_at_k", "nmi", "clustering_nmi", "single_shot_galleries"]
