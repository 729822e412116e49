"""Heads on top of a backbone feature map: pooling (average, max, GeM), the BN neck and the identity classifiers.

- GeM: generalised-mean pooling (Radenovic, Tolias & Chum, TPAMI 2018), f = (mean_hw x^p)^(1/p) with a learnable p;
  p = 1 is average pooling, p -> inf tends to max pooling.
- BN neck: a BatchNorm1d whose shift is frozen at 0 (Luo et al., "Bag of Tricks", CVPRW 2019), so the feature given to
  the classifier and the normalised test feature stay centred.
- `LargeMarginClassifier`: L-Softmax (Liu et al., ICML 2016) with the annealing of the target logit that makes
  training start; the margin itself is `reid.models.large_margin.large_margin_logits` (eq. 6 of the paper).
"""
from __future__ import annotations

import functools
from typing import Optional

import torch
from torch import nn

from ..registry import Registry
from .large_margin import large_margin_logits

# `model.pooling` names: a pooling is built with no argument and maps (B, C, h, w) -> (B, C).
POOLINGS = Registry("pooling", config_key="model.pooling")
# `model.classifier` names: a classifier is built as (in_features, num_classes, margin) and maps (B, D) -> logits.
CLASSIFIERS = Registry("classifier", config_key="model.classifier")


class GeM(nn.Module):
    """Generalised-mean pooling over the spatial dimensions: (B, C, h, w) -> (B, C).

    Inputs are clamped at `eps` first because x^p is undefined for negative x with a fractional p (after a ReLU the
    map is >= 0, so this only removes exact zeros, whose gradient wrt p would be NaN)."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6, learnable: bool = True) -> None:
        super().__init__()
        if p <= 0:
            raise ValueError(f"GeM: p must be > 0, got {p}")
        self.p = nn.Parameter(torch.tensor(float(p)), requires_grad=learnable)
        self.eps = float(eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp_min(self.eps).pow(self.p).mean(dim=(2, 3)).pow(1.0 / self.p)

    def extra_repr(self) -> str:
        return f"p={float(self.p):.3f}, eps={self.eps}"


class GlobalPool(nn.Module):
    """Average or max pooling over the spatial dimensions: (B, C, h, w) -> (B, C)."""

    def __init__(self, kind: str = "avg") -> None:
        super().__init__()
        if kind not in ("avg", "max"):
            raise ValueError(f"GlobalPool: expected 'avg' or 'max', got {kind!r}")
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3)) if self.kind == "avg" else x.amax(dim=(2, 3))

    def extra_repr(self) -> str:
        return self.kind


POOLINGS.register("avg")(functools.partial(GlobalPool, "avg"))  # the default
POOLINGS.register("max")(functools.partial(GlobalPool, "max"))
POOLINGS.register("gem")(GeM)  # learnable p, initialised at 3


def _check_name(registry: Registry, key: str, name: object, nullable: bool = False) -> None:
    """A ValueError naming the config key and the registered names when `name` is not registered."""
    if not isinstance(name, str) or name not in registry:
        null = "null or " if nullable else ""
        raise ValueError(f"{key}: expected {null}one of {', '.join(registry.names(sort=False))}, got {name!r}")


def build_pooling(name: str) -> nn.Module:
    """The registered pooling `name` (POOLINGS: `avg`, global average, the default; `max`; `gem`)."""
    _check_name(POOLINGS, "model.pooling", name)
    return POOLINGS.build(name)


class BNNeck(nn.BatchNorm1d):
    """BatchNorm1d with a frozen zero shift (the BNNeck of Luo et al. 2019)."""

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self.bias.requires_grad_(False)


class LargeMarginClassifier(nn.Module):
    """L-Softmax classifier head (Liu et al., ICML 2016): owns the class weights W (C, D), no bias.

    Training (`labels` given): logits from `large_margin_logits(x, W, labels, m, beta)` (`large_margin.py`), i.e.
    the target logit becomes (beta ||W_y|| ||x|| cos(theta) + ||W_y|| ||x|| psi(theta)) / (1 + beta), psi from
    eq. 6. beta is annealed per training forward as beta_t = max(beta_min, beta_start * (1 + gamma * t) ** -power),
    the schedule form of the authors' released layer (base, gamma, power, lambda_min). Our defaults:
    beta_start = 1000 and beta_min = 5 (the practice the paper describes), gamma = 1e-3 and power = 2, which reach
    the floor after about 13,000 iterations (beta = 250 at 1,000, 25 at 5,300); the paper gives no values for
    re-ID, so both are options.
    The iteration counter is a buffer, so the schedule resumes from a checkpoint. The margin logits are computed
    in float32 even under autocast.
    Eval mode, or no labels: plain W^T x (the margin is a training device only).
    """

    def __init__(self, in_features: int, num_classes: int, margin: int = 3, beta_start: float = 1000.0,
                 beta_min: float = 5.0, gamma: float = 1e-3, power: float = 2.0) -> None:
        super().__init__()
        if int(margin) != margin or margin < 1:
            raise ValueError(f"LargeMarginClassifier: margin must be a positive integer, got {margin!r}")
        if not 0 <= beta_min <= beta_start or gamma < 0 or power < 0:
            raise ValueError(f"LargeMarginClassifier: need 0 <= beta_min <= beta_start, gamma >= 0, power >= 0; got "
                             f"beta_start={beta_start}, beta_min={beta_min}, gamma={gamma}, power={power}")
        self.weight = nn.Parameter(torch.empty(num_classes, in_features))
        nn.init.xavier_uniform_(self.weight)
        self.margin = int(margin)
        self.beta_start, self.beta_min, self.gamma, self.power = float(beta_start), float(beta_min), gamma, power
        self.register_buffer("iteration", torch.zeros((), dtype=torch.long))

    def beta_at(self, iteration: int) -> float:
        """beta after `iteration` training forwards."""
        return max(self.beta_min, self.beta_start * (1.0 + self.gamma * iteration) ** -self.power)

    @property
    def beta(self) -> float:
        """The beta the next training forward uses."""
        return self.beta_at(int(self.iteration))

    def forward(self, x: torch.Tensor, labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        if not self.training or labels is None:
            return x @ self.weight.T

        beta = self.beta
        self.iteration += 1
        # cos(theta) and its Chebyshev polynomial lose too much in half precision: float32 even under autocast
        with torch.autocast(device_type=x.device.type, enabled=False):
            dtype = torch.promote_types(x.dtype, torch.float32)
            return large_margin_logits(x.to(dtype), self.weight.to(dtype), labels, m=self.margin, beta=beta)

    def extra_repr(self) -> str:
        return (f"in_features={self.weight.shape[1]}, num_classes={self.weight.shape[0]}, m={self.margin}, "
                f"beta={self.beta:.2f}")


@CLASSIFIERS.register("linear")
def linear_classifier(in_features: int, num_classes: int, margin: int = 3) -> nn.Module:
    """W^T x, no bias (`margin` is the large-margin head's and plays no part here)."""
    return nn.Linear(in_features, num_classes, bias=False)


CLASSIFIERS.register("large_margin")(LargeMarginClassifier)


def build_classifier(name: str, in_features: int, num_classes: Optional[int], margin: int = 3) -> nn.Module:
    """The registered classifier `name` (CLASSIFIERS: `linear`, W^T x without bias; `large_margin`, L-Softmax with
    margin `margin`)."""
    _check_name(CLASSIFIERS, "model.classifier", name, nullable=True)
    if not num_classes or num_classes < 1:
        raise ValueError(f"model.classifier '{name}' needs num_classes (the number of training identities), "
                         f"got {num_classes!r}")
    return CLASSIFIERS.build(name, in_features=in_features, num_classes=num_classes, margin=margin)
