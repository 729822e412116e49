"""Optimisers with separate parameter groups for loss parameters, and the learning-rate schedules.

Both are registries (`optim.name` and `schedule.name` accept exactly their names, declared by `config_key`):
- OPTIMIZERS: `factory(params, cfg) -> torch.optim.Optimizer`, `params` the parameter groups, `cfg` the `optim`
  section;
- SCHEDULES: `factory(cfg, epochs) -> factor(epoch)`, the factor applied to the base lr at (fractional) epoch
  `epoch`, `cfg` the `schedule` section (`warmed(cfg, factor)` adds the linear warm-up every schedule shares).
  `schedule.step: iteration` (the default) evaluates it at `iteration / iterations per epoch` before every step,
  so a warm-up epoch ramps up over its iterations; `epoch` evaluates it at whole epochs (the from-scratch configs'
  published numbers were measured so).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Mapping, Optional

import torch

from ..registry import Registry

OPTIMIZERS = Registry("optimiser", config_key="optim.name")
SCHEDULES = Registry("schedule", config_key="schedule.name")

Factor = Callable[[int], float]


def _lookup(registry: Registry, key: str, name: Any) -> Callable[..., Any]:
    """The registered entry, or a ValueError naming the config key and the registered names."""
    if not isinstance(name, str) or name not in registry:
        raise ValueError(f"{key}: {registry.unknown(name)}")
    return registry.get(name)


@OPTIMIZERS.register("sgd")
def sgd(params: List[Dict[str, Any]], cfg: Mapping[str, Any]) -> torch.optim.Optimizer:
    """SGD with momentum (`optim.momentum`, `optim.nesterov`)."""
    return torch.optim.SGD(params, lr=cfg["lr"], momentum=cfg["momentum"], nesterov=cfg["nesterov"])


@OPTIMIZERS.register("adam")
def adam(params: List[Dict[str, Any]], cfg: Mapping[str, Any]) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=cfg["lr"])


@OPTIMIZERS.register("adamw")
def adamw(params: List[Dict[str, Any]], cfg: Mapping[str, Any]) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=cfg["lr"])


def build_optimizer(
    model: torch.nn.Module, cfg: Mapping[str, Any], loss_parameters: Optional[List[torch.nn.Parameter]] = None
) -> torch.optim.Optimizer:
    """The registered optimiser `optim.name` (OPTIMIZERS: sgd with momentum, adam, adamw); loss parameters (e.g.
    density alpha_c) get their own lr and decay."""
    factory = _lookup(OPTIMIZERS, "optim.name", cfg["name"])
    groups: List[Dict[str, Any]] = [
        {"params": [p for p in model.parameters() if p.requires_grad], "name": "model",
         "weight_decay": cfg["weight_decay"]}
    ]
    loss_parameters = [p for p in (loss_parameters or []) if p.requires_grad]
    if loss_parameters:
        groups.append({
            "params": loss_parameters,
            "name": "loss",
            "lr": cfg["loss_lr"] if cfg["loss_lr"] is not None else cfg["lr"],
            "weight_decay": cfg["loss_weight_decay"],
        })
    return factory(params=groups, cfg=cfg)


def warmed(cfg: Mapping[str, Any], factor: float, epoch: int) -> float:
    """`factor` during the linear warm-up (`schedule.warmup_epochs` from `schedule.warmup_factor` to 1)."""
    warmup = int(cfg["warmup_epochs"])
    if warmup > 0 and epoch < warmup:
        alpha = epoch / warmup
        return factor * (cfg["warmup_factor"] * (1 - alpha) + alpha)
    return factor


@SCHEDULES.register("constant")
def constant(cfg: Mapping[str, Any], epochs: int) -> Factor:
    return lambda e: warmed(cfg, 1.0, e)


@SCHEDULES.register("multistep")
def multistep(cfg: Mapping[str, Any], epochs: int) -> Factor:
    """gamma ** (milestones passed)."""
    milestones = sorted(int(m) for m in cfg["milestones"])
    return lambda e: warmed(cfg, cfg["gamma"] ** sum(e >= m for m in milestones), e)


@SCHEDULES.register("constant_exp")
def constant_exp(cfg: Mapping[str, Any], epochs: int) -> Factor:
    """Li et al. (SN loss): constant until decay_start, then exponential decay reaching final_factor at decay_end."""
    start, end, final = int(cfg["decay_start"]), int(cfg["decay_end"]), float(cfg["final_factor"])
    if end <= start:
        raise ValueError(f"schedule.decay_end ({end}) must be after schedule.decay_start ({start})")

    def factor(e: int) -> float:
        if e < start:
            return warmed(cfg, 1.0, e)
        return warmed(cfg, final ** (min(e - start, end - start) / (end - start)), e)

    return factor


@SCHEDULES.register("warmup_cosine")
def warmup_cosine(cfg: Mapping[str, Any], epochs: int) -> Factor:
    """Warm-up, then a cosine from 1 down to `schedule.min_lr_factor` at the last epoch."""
    warmup = int(cfg["warmup_epochs"])
    floor = float(cfg["min_lr_factor"])

    def cosine(e: int) -> float:
        if e < warmup:
            return warmed(cfg, 1.0, e)
        span = max(1, epochs - warmup)
        progress = min(1.0, (e - warmup) / span)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return cosine


def lr_factor_fn(cfg: Mapping[str, Any], epochs: int) -> Factor:
    """Factor applied to the base lr at the start of each epoch: the registered schedule `schedule.name`."""
    return _lookup(SCHEDULES, "schedule.name", cfg["name"])(cfg=cfg, epochs=epochs)


def steps_per_iteration(cfg: Mapping[str, Any]) -> bool:
    """Whether the scheduler steps every iteration (`schedule.step: iteration`) rather than every epoch."""
    step = cfg.get("step", "iteration")
    if step not in ("iteration", "epoch"):
        raise ValueError(f"schedule.step: expected 'iteration' or 'epoch', got {step!r}")
    return step == "iteration"


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: Mapping[str, Any], epochs: int,
                    iters_per_epoch: int = 1) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR stepped once per iteration (`schedule.step: iteration`, counting `iters_per_epoch` per epoch) or
    once per epoch; loss-parameter groups follow the same factor."""
    factor = lr_factor_fn(cfg, epochs)
    if steps_per_iteration(cfg):
        per_epoch = max(1, int(iters_per_epoch))
        by_step = lambda step: factor(step / per_epoch)  # noqa: E731
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=[by_step] * len(optimizer.param_groups))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=[factor] * len(optimizer.param_groups))
