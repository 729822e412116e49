"""The trainer's hooks: the training loop reaches the rank-list drawing without the test runner, and a hook that
sets `stop_requested` (as Ctrl-C does) stops the loop at that step with a checkpoint."""
from __future__ import annotations

from typing import Set

import pytest
import torch

from engine_helpers import stop_at_step, tiny_config
from reid.engine.hooks import DensityHook, EvalHook, Hook, InterruptHook, ProjectorHook, default_hooks
from reid.engine.trainer import Trainer, TrainingInterrupted
from test_import_rules import import_graph


def _reached(start: str) -> Set[str]:
    """Every reid module `start` imports, directly or through others (lazy imports included)."""
    graph = import_graph()
    seen: Set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        if name in seen or name not in graph:
            continue
        seen.add(name)
        todo.extend(graph[name])
    return seen


def test_the_training_loop_does_not_import_the_test_runner():
    reached = _reached("reid.engine.trainer")
    assert {"reid.engine.hooks", "reid.engine.ranklists", "reid.engine.density_setup"} <= reached
    assert "reid.engine.tester" not in reached
    assert "reid.engine.tester" in _reached("reid.cli.commands")  # the checker does see the test runner's users


def test_default_hooks_in_call_order():
    assert [type(h) for h in default_hooks({})] == [InterruptHook, DensityHook, EvalHook, ProjectorHook]
    assert Hook().checkpoint_entries() == {}


@pytest.mark.parametrize("step,position", [(1, (0, 1)), (4, (1, 1))])
def test_a_hook_stop_request_checkpoints_that_step(step, position, tiny_market, tmp_path):
    train = {"epochs": 2, "iters_per_epoch": 3, "eval_every": 0, "projector_samples": 0}
    cfg = tiny_config(tmp_path / "run", tiny_market, [{"name": "softmax"}], {"classifier": "linear"}, train=train)
    trainer = Trainer(cfg, progress=False, hooks=stop_at_step(cfg, step))
    with pytest.raises(TrainingInterrupted, match="checkpoint saved") as info:
        trainer.fit()
    trainer.close()
    assert info.value.exit_code == 130  # no signal named: reported as Ctrl-C
    saved = torch.load(tmp_path / "run" / "checkpoint.pth", weights_only=True)
    assert (saved["epoch"], saved["batch"], saved["global_step"]) == (*position, step)
    assert saved["density_ready"] is False  # no density term: nothing measured, the key still written
