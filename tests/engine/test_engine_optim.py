"""Optimiser and learning-rate schedules (reid.engine.optim): the schedules' factors, the loss parameters' own group,
per-iteration and per-epoch stepping."""
import math

import pytest
import torch

from reid.config import ConfigError, load_config
from reid.engine.optim import build_optimizer, build_scheduler, lr_factor_fn


def _factors(overrides, epochs=10):
    cfg = load_config(None, overrides)
    fn = lr_factor_fn(cfg["schedule"], epochs)
    return [fn(e) for e in range(epochs)]


def test_schedules():
    assert _factors(["schedule.name=multistep", "schedule.milestones=[3,6]", "schedule.gamma=0.1"]) == pytest.approx(
        [1, 1, 1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.01])
    # SN loss: constant until decay_start, exponential to final_factor at decay_end.
    f = _factors(["schedule.name=constant_exp", "schedule.decay_start=2", "schedule.decay_end=6",
                  "schedule.final_factor=0.001"])
    assert f[:2] == [1, 1] and f[2] == pytest.approx(1.0) and f[6] == pytest.approx(1e-3)
    assert f[4] == pytest.approx(1e-3 ** 0.5) and f[9] == pytest.approx(1e-3)
    c = _factors(["schedule.name=warmup_cosine", "schedule.warmup_epochs=2", "schedule.warmup_factor=0.1"])
    assert c[0] == pytest.approx(0.1) and c[1] == pytest.approx(0.55) and c[2] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(c[2:], c[3:]))


def test_optimizer_gives_loss_parameters_their_own_group():
    model = torch.nn.Linear(3, 2)
    alpha = torch.nn.Parameter(torch.ones(4))
    cfg = load_config(None, ["optim.name=sgd", "optim.lr=0.1", "optim.loss_lr=0.01"])
    opt = build_optimizer(model, cfg["optim"], [alpha])
    assert [g["name"] for g in opt.param_groups] == ["model", "loss"]
    assert opt.param_groups[1]["lr"] == 0.01 and opt.param_groups[1]["weight_decay"] == 0.0
    sched = build_scheduler(opt, load_config(None, ["schedule.milestones=[1]"])["schedule"], 3)
    opt.step(); sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01) and opt.param_groups[1]["lr"] == pytest.approx(0.001)


def _lrs(overrides, steps, per_epoch):
    model = torch.nn.Linear(2, 1)
    cfg = load_config(None, ["optim.lr=1.0", *overrides])
    opt = build_optimizer(model, cfg["optim"])
    sched = build_scheduler(opt, cfg["schedule"], 3, per_epoch)
    seen = []
    for _ in range(steps):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return seen


def test_iteration_schedule_ramps_the_warm_up_over_its_iterations():
    """schedule.step=iteration (the default): the factor at iteration i is the schedule's at epoch i / per_epoch,
    so the warm-up epoch goes 0.1, 0.325, 0.55, 0.775 instead of running all of it at 0.1."""
    lrs = _lrs(["schedule.name=warmup_cosine", "schedule.warmup_epochs=1", "schedule.warmup_factor=0.1"], 8, 4)
    assert lrs[:4] == pytest.approx([0.1, 0.325, 0.55, 0.775])
    # then the cosine from 1 at epoch 1 towards 0 at epoch 3, one value per iteration
    assert lrs[4] == pytest.approx(1.0)
    assert lrs[6] == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.25)))
    assert all(a > b for a, b in zip(lrs[4:], lrs[5:]))


def test_epoch_schedule_keeps_one_value_per_epoch():
    """schedule.step=epoch (the published from-scratch configs): stepped once per epoch by the trainer, the
    iterations per epoch play no part."""
    overrides = ["schedule.name=warmup_cosine", "schedule.warmup_epochs=1", "schedule.warmup_factor=0.1",
                 "schedule.step=epoch"]
    assert _lrs(overrides, 3, 4) == _lrs(overrides, 3, 1) == pytest.approx([0.1, 1.0, 0.5])


def test_schedule_step_must_be_iteration_or_epoch():
    with pytest.raises(ConfigError, match="schedule.step"):
        load_config(None, ["schedule.step=batch"])
