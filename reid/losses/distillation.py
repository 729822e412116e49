"""The distillation baselines of DarkRank's tables: KD (Hinton et al. 2015), FitNet (Romero et al. 2015) and
Direct Match (DarkRank eq. 7)."""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F

from .base import ReIDLoss, pairwise_sq_dist, upcast
from .registry import LOSSES


@LOSSES.register("kd")
class KDLoss(ReIDLoss):
    """T^2 * KL(softmax(t / T) || softmax(s / T)), batch mean; T = 4 (so the released code's weight 16 is T^2)."""

    default_input = "logits"
    default_teacher_input = "logits"
    requires_teacher = True

    def __init__(self, temperature: float = 4.0) -> None:
        super().__init__()
        self.temperature = float(temperature)

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor, teacher: torch.Tensor = None) -> torch.Tensor:
        if inputs.shape != teacher.shape:
            raise ValueError(f"kd: student logits {tuple(inputs.shape)} and teacher logits {tuple(teacher.shape)} "
                             "differ (both must classify the same training identities)")
        t = self.temperature
        log_s = F.log_softmax(upcast(inputs) / t, dim=1)
        log_t = F.log_softmax(upcast(teacher.detach()) / t, dim=1)  # the teacher is fixed
        return F.kl_div(log_s, log_t, reduction="batchmean", log_target=True) * t * t


@LOSSES.register("fitnet")
class FitNetLoss(ReIDLoss):
    """Mean squared error between the student's embedding (through a learned linear regressor when the dims
    differ) and the teacher's."""

    default_input = "embedding"
    default_teacher_input = "embedding"
    requires_teacher = True

    def __init__(self, student_dim: Optional[int] = None, teacher_dim: Optional[int] = None) -> None:
        super().__init__()
        self.regressor = (nn.Linear(student_dim, teacher_dim) if student_dim and teacher_dim
                          and student_dim != teacher_dim else None)

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor, teacher: torch.Tensor = None) -> torch.Tensor:
        x = self.regressor(upcast(inputs)) if self.regressor is not None else upcast(inputs)
        if x.shape != teacher.shape:
            raise ValueError(f"fitnet: student features {tuple(x.shape)} vs teacher {tuple(teacher.shape)}; give "
                             "student_dim and teacher_dim so a regressor is built")
        return F.mse_loss(x, upcast(teacher.detach()))


@LOSSES.register("direct_match")
class DirectMatchLoss(ReIDLoss):
    """Eq. 7: squared differences between student and teacher query-candidate Euclidean distances, averaged over
    all ordered (anchor, candidate) pairs of the batch."""

    default_teacher_input = "normalized"
    requires_teacher = True

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor, teacher: torch.Tensor = None) -> torch.Tensor:
        if inputs.shape[0] != teacher.shape[0]:
            raise ValueError(f"direct_match: student batch {inputs.shape[0]} != teacher batch {teacher.shape[0]}")
        ds = pairwise_sq_dist(upcast(inputs)).clamp_min(1e-12).sqrt()
        dt = pairwise_sq_dist(upcast(teacher.detach())).clamp_min(1e-12).sqrt()
        off = ~torch.eye(len(ds), dtype=torch.bool, device=ds.device)
        return (ds - dt)[off].pow(2).mean()
