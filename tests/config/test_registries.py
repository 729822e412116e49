"""One source of truth per option list: the config accepts exactly the registered poolings, classifiers,
optimisers and schedules (the registry is the list), plug-ins registered later are accepted and built, and an
unknown name is an error naming the key and the registered names."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from reid import cli
from reid.builders import build_model_from_config
from reid.config import ConfigError, load_config
from reid.config.schema import CHOICES, DEFAULTS, REGISTERED, choices, registry
from reid.engine.optim import OPTIMIZERS, SCHEDULES, build_optimizer, lr_factor_fn
from reid.models import CLASSIFIERS, POOLINGS

SMALL = ["model.backbone=small", "model.last_stride=2"]


def _default(key):
    node = DEFAULTS
    for part in key.split("."):
        node = node[part]
    return node


@pytest.mark.parametrize("key, expected", [("model.pooling", POOLINGS), ("model.classifier", CLASSIFIERS),
                                           ("optim.name", OPTIMIZERS), ("schedule.name", SCHEDULES)])
def test_the_config_accepts_exactly_the_registered_names(key, expected):
    assert registry(key) is expected
    assert key not in CHOICES  # no second list to keep in step
    nullable = (None,) if _default(key) is None else ()
    assert choices(key) == nullable + tuple(expected.names(sort=False))
    assert _default(key) is None or _default(key) in expected
    for name in expected.names():
        assert load_config(None, [f"{key}={name}"])[key.split(".")[0]][key.split(".")[1]] == name


def test_registered_names_keep_their_order_and_the_built_in_sets():
    assert POOLINGS.names(sort=False) == ["avg", "max", "gem"]
    assert CLASSIFIERS.names(sort=False) == ["linear", "large_margin"]
    assert OPTIMIZERS.names(sort=False) == ["sgd", "adam", "adamw"]
    assert SCHEDULES.names(sort=False) == ["constant", "multistep", "constant_exp", "warmup_cosine"]
    assert set(REGISTERED) == {"model.pooling", "model.classifier", "optim.name", "schedule.name"}


class SumPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(dim=(2, 3))


def test_a_registered_pooling_is_accepted_by_the_config_and_built():
    with pytest.raises(ConfigError, match="model.pooling.*not one of: avg, max, gem"):
        load_config(None, ["model.pooling=test_sum"])
    POOLINGS.register("test_sum")(SumPool)
    try:
        cfg = load_config(None, SMALL + ["model.pooling=test_sum"])
        model = build_model_from_config(cfg, None).eval()
        assert isinstance(model.pool, SumPool)
        fmap = model.backbone(torch.rand(2, 3, 32, 16))
        out = model(torch.rand(2, 3, 32, 16), return_dict=True)
        assert out["pooled"].shape == (2, fmap.shape[1])
    finally:
        POOLINGS.unregister("test_sum")
    with pytest.raises(ConfigError, match="test_sum"):
        load_config(None, ["model.pooling=test_sum"])


def test_a_registered_classifier_is_accepted_and_built():
    @CLASSIFIERS.register("test_biased")
    def biased(in_features, num_classes, margin=3):
        return nn.Linear(in_features, num_classes, bias=True)

    try:
        cfg = load_config(None, SMALL + ["model.classifier=test_biased"])
        model = build_model_from_config(cfg, 5).train()
        assert isinstance(model.classifier, nn.Linear) and model.classifier.bias is not None
        assert model(torch.rand(2, 3, 32, 16), torch.tensor([0, 1]))["logits"].shape == (2, 5)
    finally:
        CLASSIFIERS.unregister("test_biased")


def test_unknown_names_given_past_the_config_name_the_key_and_the_registered_names():
    cfg = load_config(None, SMALL)
    for key in ("pooling", "classifier"):
        bad = {**cfg, "model": {**cfg["model"], key: "nonsense"}}
        with pytest.raises(ConfigError, match=f"model.{key}: unknown"):
            build_model_from_config(bad, 3)


def test_an_unknown_optimiser_names_the_key_and_the_registered_names():
    with pytest.raises(ConfigError) as info:
        load_config(None, ["optim.name=rmsprop"])
    message = str(info.value)
    assert "optim.name" in message and all(name in message for name in OPTIMIZERS.names())
    model = nn.Linear(2, 2)
    optim = {**load_config()["optim"], "name": "rmsprop"}  # a dict built without the config check
    with pytest.raises(ValueError) as info:
        build_optimizer(model, optim)
    message = str(info.value)
    assert message.startswith("optim.name: unknown optimiser 'rmsprop'")
    assert all(name in message for name in OPTIMIZERS.names())
    schedule = {**load_config()["schedule"], "name": "cosine"}
    with pytest.raises(ValueError, match="schedule.name: unknown schedule 'cosine'. Did you mean 'warmup_cosine'"):
        lr_factor_fn(schedule, 10)


def test_a_registered_optimiser_and_schedule_are_accepted_and_used():
    @OPTIMIZERS.register("test_rmsprop")
    def rmsprop(params, cfg):
        return torch.optim.RMSprop(params, lr=cfg["lr"])

    @SCHEDULES.register("test_halving")
    def halving(cfg, epochs):
        return lambda e: 0.5 ** e

    try:
        cfg = load_config(None, ["optim.name=test_rmsprop", "optim.lr=0.1", "schedule.name=test_halving"])
        opt = build_optimizer(nn.Linear(2, 2), cfg["optim"])
        assert isinstance(opt, torch.optim.RMSprop)
        assert opt.param_groups[0]["weight_decay"] == cfg["optim"]["weight_decay"]
        assert [lr_factor_fn(cfg["schedule"], 4)(e) for e in range(3)] == [1.0, 0.5, 0.25]
    finally:
        OPTIMIZERS.unregister("test_rmsprop")
        SCHEDULES.unregister("test_halving")


def test_the_alias_explanation_lists_the_registered_schedules():
    with pytest.raises(ConfigError) as info:
        load_config(None, ["train.lr_scheduler=cosine"])
    assert "schedule.name: " + " | ".join(SCHEDULES.names(sort=False)) in str(info.value)


def test_cli_test_options_come_from_the_schema():
    actions = {a.dest: a for a in cli.build_test_parser()._actions}
    assert tuple(actions["ap"].choices) == CHOICES["test.ap"]
    assert tuple(actions["protocol"].choices) == CHOICES["test.protocol"]
    assert tuple(actions["multi_query"].choices) == tuple(c for c in CHOICES["test.multi_query"] if c is not None)
