"""The one calling convention every loss follows."""
from __future__ import annotations

import inspect
from typing import Any, Mapping, Optional

import torch
from torch import nn


class ReIDLoss(nn.Module):
    """`loss(inputs, labels, teacher=None) -> scalar`.

    `inputs` is the model output named by `default_input` (a `CombinedLoss` term may choose another with
    `input:`), `labels` the batch identities (or attribute vectors), `teacher` the teacher model's output named by
    `default_teacher_input` for distillation losses (`requires_teacher = True`). `needs_positives`: the loss compares
    images of one identity within a batch, so with K = 1 image per identity it has nothing to compare (the trainer
    refuses data.k < 2 for it); a loss wrapping a registered base loss answers from its base
    (`term_needs_positives`).
    """

    default_input: str = "normalized"
    default_teacher_input: Optional[str] = None
    requires_teacher: bool = False
    needs_positives: bool = False

    @classmethod
    def term_needs_positives(cls, term: Mapping[str, Any]) -> bool:
        """Whether a `loss.terms` entry of this loss (its parameters) needs positives, before anything is built."""
        return bool(cls.needs_positives)

    def __call__(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        # Losses always run outside autocast: distances, exponentials and log-sum-exps need float32 even when the
        # network runs in half precision (half inputs are upcast by `upcast`).
        with torch.autocast("cpu", enabled=False), torch.autocast("cuda", enabled=False):
            return super().__call__(*args, **kwargs)

    def forward(self, inputs: Any, labels: torch.Tensor, teacher: Any = None) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


def base_needs_positives(wrapper: type, term: Mapping[str, Any]) -> bool:
    """`term_needs_positives` of a loss wrapping a registered base loss (parameters `base`, with the wrapper's
    default, and `base_params`): the base's answer (False for an unknown base, which the wrapper refuses)."""
    from .registry import LOSSES

    name = term.get("base", inspect.signature(wrapper.__init__).parameters["base"].default)
    return isinstance(name, str) and name in LOSSES and LOSSES.get(name).term_needs_positives(
        dict(term.get("base_params") or {}))


def upcast(x: torch.Tensor) -> torch.Tensor:
    """float16 / bfloat16 inputs are computed in float32; float32 and float64 are kept (gradchecks use float64)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def check_batch(inputs: Any, labels: torch.Tensor, name: str, what: str = "embeddings",
                shape: str = "(B, d)") -> torch.Tensor:
    """Validate a batch `inputs` of shape (B, x) (`what` it holds, its `shape` for the message) and its (B,) labels;
    returns the inputs upcast for the loss (half precision -> float32)."""
    if not isinstance(inputs, torch.Tensor) or inputs.ndim != 2:
        got = tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else type(inputs).__name__
        raise ValueError(f"{name}: expected {what} of shape {shape}, got {got}")
    if labels.shape != (inputs.shape[0],):
        raise ValueError(f"{name}: labels must have shape ({inputs.shape[0]},) to match the {what}, got "
                         f"{tuple(labels.shape)}")
    return upcast(inputs)


def pairwise_sq_dist(x: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances within a batch (exact zeros on the diagonal)."""
    sq = x.pow(2).sum(1)
    d2 = (sq[:, None] + sq[None] - 2 * x @ x.T).clamp_min(0)
    return d2 * (1 - torch.eye(len(x), device=x.device, dtype=d2.dtype))


def pairwise_dist(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Euclidean distances, sqrt(clamp(d2, eps)) so gradients stay finite for duplicates."""
    return pairwise_sq_dist(x).clamp_min(eps).sqrt()


def same_label(labels: torch.Tensor) -> torch.Tensor:
    return labels[:, None] == labels[None]
