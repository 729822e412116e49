"""Optimisers with separate parameter groups for loss parameters, and the learning-rate schedules."""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Mapping, Optional

import torch


def build_optimizer(
    model: torch.nn.Module, cfg: Mapping[str, Any], loss_parameters: Optional[List[torch.nn.Parameter]] = None
) -> torch.optim.Optimizer:
    """SGD (momentum) / Adam / AdamW; loss parameters (e.g. density alpha_c) get their own lr and decay."""
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
    name = cfg["name"]
    if name == "sgd":
        return torch.optim.SGD(groups, lr=cfg["lr"], momentum=cfg["momentum"], nesterov=cfg["nesterov"])
    if name == "adam":
        return torch.optim.Adam(groups, lr=cfg["lr"])
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg["lr"])
    raise ValueError(f"optim.name: unknown optimiser '{name}' (expected sgd, adam or adamw)")


def lr_factor_fn(cfg: Mapping[str, Any], epochs: int) -> Callable[[int], float]:
    """Factor applied to the base lr at the start of each epoch."""
    name = cfg["name"]
    warmup = int(cfg["warmup_epochs"])

    def warm(epoch: int, factor: float) -> float:
        if warmup > 0 and epoch < warmup:
            alpha = epoch / warmup
            return factor * (cfg["warmup_factor"] * (1 - alpha) + alpha)
        return factor

    if name == "constant":
        return lambda e: warm(e, 1.0)
    if name == "multistep":
        milestones = sorted(int(m) for m in cfg["milestones"])
        return lambda e: warm(e, cfg["gamma"] ** sum(e >= m for m in milestones))
    if name == "constant_exp":
        # Li et al. (SN loss): constant until decay_start, then exponential decay reaching final_factor at decay_end.
        start, end, final = int(cfg["decay_start"]), int(cfg["decay_end"]), float(cfg["final_factor"])
        if end <= start:
            raise ValueError(f"schedule.decay_end ({end}) must be after schedule.decay_start ({start})")

        def constant_exp(e: int) -> float:
            if e < start:
                return warm(e, 1.0)
            return warm(e, final ** (min(e - start, end - start) / (end - start)))

        return constant_exp
    if name == "warmup_cosine":
        floor = float(cfg["min_lr_factor"])

        def cosine(e: int) -> float:
            if e < warmup:
                return warm(e, 1.0)
            span = max(1, epochs - warmup)
            progress = min(1.0, (e - warmup) / span)
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

        return cosine
    raise ValueError(f"schedule.name: unknown schedule '{name}'")


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: Mapping[str, Any], epochs: int) -> torch.optim.lr_scheduler.LambdaLR:
    """An epoch-stepped LambdaLR; loss-parameter groups follow the same factor."""
    factor = lr_factor_fn(cfg, epochs)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=[factor] * len(optimizer.param_groups))
