"""HORDE regularizer loss (Jacob et al., ICCV 2019): the same metric loss on every high-order embedding, summed
with weight 1 each (the high-order branch itself is reid.models.horde)."""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import torch

from .base import ReIDLoss
from .registry import LOSSES


@LOSSES.register("horde")
class HordeLoss(ReIDLoss):
    default_input = "horde"

    def __init__(self, base: str = "contrastive", base_params: Optional[Mapping[str, Any]] = None) -> None:
        super().__init__()
        self.base = LOSSES.build(base, **dict(base_params or {}))

    def forward(self, inputs: Sequence[torch.Tensor], labels: torch.Tensor, teacher=None) -> torch.Tensor:
        if not isinstance(inputs, (list, tuple)) or not inputs:
            raise ValueError("horde loss: expected the model's 'horde' output (a list of per-order embeddings); "
                             "enable model.horde in the config")
        return sum(self.base(e, labels) for e in inputs)
