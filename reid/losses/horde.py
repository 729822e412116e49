"""HORDE regularizer loss (Jacob et al., "Metric learning with HORDE: high-order regularizer for deep embeddings",
ICCV 2019, eq. 9): the same metric loss applied to every high-order embedding and summed with weight 1 each,
L = sum_k L_base(e_k). The high-order branch producing the per-order embeddings (model output "horde") is
reid.models.horde; whether order 1 (the usual embedding) is in that list is the model's choice, and it is then
trained through this sum as well.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import torch

from .base import ReIDLoss, base_needs_positives
from .registry import LOSSES


@LOSSES.register("horde")
class HordeLoss(ReIDLoss):
    """base: a registered metric loss name (contrastive, triplet, binomial_deviance, ...); base_params: its
    parameters. Each order may have its own embedding size."""

    default_input = "horde"

    @classmethod
    def term_needs_positives(cls, term: Mapping[str, Any]) -> bool:
        return base_needs_positives(cls, term)

    def __init__(self, base: str = "contrastive", base_params: Optional[Mapping[str, Any]] = None) -> None:
        super().__init__()
        cls = LOSSES.get(base)
        if cls is HordeLoss or getattr(cls, "requires_teacher", False) or getattr(cls, "default_input", "") in (
                "logits", "horde"):
            raise ValueError(f"horde: base must be a metric loss on embeddings, got {base!r}")
        try:
            self.base = cls(**dict(base_params or {}))
        except TypeError as err:
            raise ValueError(f"horde: bad base_params for {base!r}: {err}") from err
        self.needs_positives = self.base.needs_positives

    def forward(self, inputs: Sequence[torch.Tensor], labels: torch.Tensor, teacher: object = None) -> torch.Tensor:
        if not isinstance(inputs, (list, tuple)) or not inputs:
            raise ValueError("horde loss: expected the model's 'horde' output (a non-empty list of per-order "
                             f"embeddings), got {type(inputs).__name__}; enable model.horde in the config")
        total = self.base(inputs[0], labels)
        for embedding in inputs[1:]:
            total = total + self.base(embedding, labels)
        return total
