"""Identity (classification) losses on the model's logits."""
from __future__ import annotations

import torch
from torch.nn import functional as F

from .base import ReIDLoss, upcast
from .registry import LOSSES


@LOSSES.register("softmax")
class SoftmaxLoss(ReIDLoss):
    """Cross-entropy on identity logits, with optional label smoothing (Szegedy et al. 2016)."""

    default_input = "logits"

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        if not 0 <= label_smoothing < 1:
            raise ValueError(f"softmax: label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor, teacher=None) -> torch.Tensor:
        return F.cross_entropy(upcast(inputs), labels, label_smoothing=self.label_smoothing)


@LOSSES.register("large_margin_softmax")
class LargeMarginSoftmaxLoss(SoftmaxLoss):
    """Large-margin softmax (Liu et al. 2016): cross-entropy on the logits of the model's `large_margin`
    classifier head (reid.models.large_margin), where the margin on the target logit is applied."""
