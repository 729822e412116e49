"""Identity (classification) losses on the model's logits.

The large-margin softmax of DarkRank's student takes the logits of the large-margin head
(`reid.models.large_margin.large_margin_logits`, L-Softmax eq. 6) and applies the softmax cross-entropy here.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

from .base import ReIDLoss, check_batch
from .registry import LOSSES


@LOSSES.register("softmax")
class SoftmaxLoss(ReIDLoss):
    """Cross-entropy on identity logits with optional label smoothing epsilon (Szegedy et al., CVPR 2016, sec. 7):
    target distribution (1 - eps) one-hot + eps / C."""

    default_input = "logits"

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        if not 0 <= label_smoothing < 1:
            raise ValueError(f"softmax: label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor, teacher: object = None) -> torch.Tensor:
        logits = check_batch(inputs, labels, type(self).__name__, "logits", "(B, num_classes)")
        if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= inputs.shape[1]):
            raise ValueError(f"{type(self).__name__}: labels must be in [0, {inputs.shape[1] - 1}] (the classifier's "
                             f"classes), got [{int(labels.min())}, {int(labels.max())}]")
        return F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)


@LOSSES.register("large_margin_softmax")
class LargeMarginSoftmaxLoss(SoftmaxLoss):
    """L-Softmax (Liu et al. 2016): cross-entropy on the logits of the model's `large_margin` classifier head,
    which applies `reid.models.large_margin.large_margin_logits` to the target class during training (it needs the
    labels, so the margin lives in the head; this loss is the cross-entropy on top). Use with
    `model.classifier: large_margin`."""
