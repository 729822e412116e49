"""Config schema: inheritance, overrides, unknown keys, bad types, resume conflicts, schedules."""
import math
import pytest
import torch
import yaml

from reid.config import ConfigError, DEFAULTS, load_config, resume_conflicts, save_config
from reid.engine.optim import build_optimizer, build_scheduler, lr_factor_fn


def write(path, data):
    path.write_text(yaml.safe_dump(data))
    return path


def test_defaults_without_file():
    cfg = load_config()
    assert cfg == DEFAULTS
    assert cfg is not DEFAULTS


def test_base_inheritance_and_overrides(tmp_path):
    write(tmp_path / "base.yaml", {"model": {"backbone": "resnet18", "embedding_dim": 128}, "optim": {"lr": 0.1}})
    write(tmp_path / "child.yaml", {"_base_": "base.yaml", "optim": {"lr": 0.01}, "data": {"p": 8}})
    cfg = load_config(tmp_path / "child.yaml", ["data.k=2", "optim.lr=1e-3", "data.kwargs.split_id=3"])
    assert cfg["model"]["backbone"] == "resnet18"  # from the base
    assert cfg["model"]["embedding_dim"] == 128
    assert cfg["data"]["p"] == 8 and cfg["data"]["k"] == 2
    assert cfg["optim"]["lr"] == pytest.approx(1e-3)  # override beats child beats base
    assert cfg["data"]["kwargs"] == {"split_id": 3}
    assert cfg["optim"]["name"] == DEFAULTS["optim"]["name"]  # untouched default


def test_two_bases_do_not_reset_each_other(tmp_path):
    write(tmp_path / "a.yaml", {"model": {"backbone": "resnet18"}})
    write(tmp_path / "b.yaml", {"optim": {"lr": 0.5}})
    write(tmp_path / "c.yaml", {"_base_": ["a.yaml", "b.yaml"]})
    cfg = load_config(tmp_path / "c.yaml")
    assert cfg["model"]["backbone"] == "resnet18" and cfg["optim"]["lr"] == 0.5


def test_open_sections_are_replaced_not_merged(tmp_path):
    write(tmp_path / "base.yaml", {"loss": {"terms": [{"name": "triplet"}, {"name": "softmax"}]}})
    write(tmp_path / "child.yaml", {"_base_": "base.yaml", "loss": {"terms": [{"name": "support_neighbor"}]}})
    assert load_config(tmp_path / "child.yaml")["loss"]["terms"] == [{"name": "support_neighbor"}]


def test_unknown_key_suggests_nearest(tmp_path):
    path = write(tmp_path / "bad.yaml", {"optim": {"learning_rate": 0.1, "lrr": 1}})
    with pytest.raises(ConfigError, match=r"unknown config key 'optim\.(learning_rate|lrr)' in .*bad\.yaml"):
        load_config(path)
    with pytest.raises(ConfigError, match="did you mean 'model.backbone'"):
        load_config(None, ["model.backbon=resnet18"])


@pytest.mark.parametrize("override, message", [
    ("train.epochs=ten", "expected an integer"),
    ("model.bn_neck=3", "expected a boolean"),
    ("optim.lr=fast", "expected a number"),
    ("optim.name=rmsprop", "not one of: sgd, adam, adamw"),
    ("schedule.milestones=5", "expected a list"),
    ("nonsense", "key.sub=value"),
])
def test_bad_values(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping at top level"):
        load_config(tmp_path / "list.yaml")
    write(tmp_path / "loop_a.yaml", {"_base_": "loop_b.yaml"})
    write(tmp_path / "loop_b.yaml", {"_base_": "loop_a.yaml"})
    with pytest.raises(ConfigError, match="circular"):
        load_config(tmp_path / "loop_a.yaml")


def test_save_round_trip(tmp_path):
    cfg = load_config(None, ["model.backbone=small", "data.kwargs.num_ids=10"])
    save_config(cfg, tmp_path / "run" / "config.yaml")
    assert load_config(tmp_path / "run" / "config.yaml") == cfg


def test_resume_conflicts_ignore_safe_keys():
    old = load_config()
    new = load_config(None, ["train.epochs=500", "data.num_workers=0", "test.rerank=true"])
    assert resume_conflicts(old, new) == []
    changed = resume_conflicts(old, load_config(None, ["model.backbone=resnet18", "optim.lr=0.5"]))
    assert any(c.startswith("model.backbone") for c in changed) and any(c.startswith("optim.lr") for c in changed)


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
