"""A few training steps per loss family and for distillation reduce the loss; every shipped config builds."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from engine_helpers import config_file, fixed_batch_loss, stop_at_step, tiny_config
from reid.config import load_config
from reid.builders import build_losses_from_config, build_model_from_config
from reid.engine.hooks import DensityHook
from reid.engine.trainer import Trainer, TrainingInterrupted
from reid.losses import LOSSES

REPO = Path(__file__).resolve().parents[2]

FAMILIES = {
    "softmax_triplet": dict(terms=[{"name": "softmax"}, {"name": "triplet", "margin": 0.3}],
                            model={"classifier": "linear", "bn_neck": True}),
    "large_margin_contrastive": dict(terms=[{"name": "large_margin_softmax"},
                                            {"name": "contrastive", "weight": 5.0, "neg_margin": 0.9}],
                                     model={"classifier": "large_margin", "margin": 3}),
    "support_neighbor": dict(terms=[{"name": "support_neighbor", "k": 10, "sigma": 10.0}], epochs=6),
    "density_adaptivity": dict(terms=[{"name": "density_adaptivity", "base": "contrastive", "lam": 1.0}]),
    "horde": dict(terms=[{"name": "contrastive"}, {"name": "horde", "base": "contrastive"}],
                  model={"horde": {"orders": 3, "projection_dim": 64, "embedding_dim": 16}}),
    "hraml": dict(terms=[{"name": "hraml"}]),
    "npair_multisimilarity": dict(terms=[{"name": "npair"}, {"name": "multi_similarity"}], epochs=8),
    "binomial": dict(terms=[{"name": "binomial_deviance"}]),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_training_reduces_loss(family, tiny_market, tmp_path):
    spec = FAMILIES[family]
    cfg = tiny_config(tmp_path / "run", tiny_market, spec["terms"], spec.get("model"),
                      train={"epochs": spec.get("epochs", 3), "iters_per_epoch": 4, "eval_every": spec.get("epochs", 3),
                             "projector_samples": 0})
    trainer = Trainer(cfg, progress=False)
    # the density terms' D0 first (as fit() would), so that the loss before training is the one fit() starts from
    next(h for h in trainer.hooks if isinstance(h, DensityHook)).before_train(trainer)
    before = fixed_batch_loss(trainer)
    result = trainer.fit()
    after = fixed_batch_loss(trainer)
    trainer.close()
    assert after < before, f"{family}: loss {before:.4f} -> {after:.4f}"
    # one evaluation (eval_every = epochs): fit() returns it, the results file and the best checkpoint record it
    epochs = spec.get("epochs", 3)
    saved = json.loads((tmp_path / "run" / f"results_epoch{epochs}.json").read_text())
    assert saved["mAP"] == result.mAP and saved["rank1"] == result.rank(1)
    assert (trainer.best_metric, trainer.best_epoch) == (result.mAP, epochs)
    assert (tmp_path / "run" / "checkpoint.pth").is_file()
    assert (tmp_path / "run" / "config.yaml").is_file()


def test_density_d0_measured_and_checkpointed(tiny_market, tmp_path):
    cfg = tiny_config(tmp_path / "run", tiny_market, FAMILIES["density_adaptivity"]["terms"],
                      train={"epochs": 1, "iters_per_epoch": 1, "eval_every": 0, "projector_samples": 0})
    trainer = Trainer(cfg, progress=False)
    trainer.fit()
    trainer.close()
    state = torch.load(tmp_path / "run" / "checkpoint.pth", weights_only=True)
    assert state["density_ready"] is True
    d0 = [v for k, v in state["losses"].items() if k.endswith("d0")]
    assert d0 and torch.isfinite(d0[0]).all() and d0[0].numel() == trainer.num_classes


def test_density_state_resumes_from_the_checkpoint(tiny_market, tmp_path):
    """DensityHook's `density_ready` goes into the checkpoint and comes back on resume: D0 is kept, not measured
    again on the half-trained network."""
    cfg = tiny_config(tmp_path / "run", tiny_market, FAMILIES["density_adaptivity"]["terms"],
                      train={"epochs": 2, "iters_per_epoch": 2, "eval_every": 0, "projector_samples": 0})
    first = Trainer(cfg, progress=False, hooks=stop_at_step(cfg, 3))
    with pytest.raises(TrainingInterrupted):
        first.fit()
    first.close()
    saved = torch.load(tmp_path / "run" / "checkpoint.pth", weights_only=True)
    assert saved["density_ready"] is True and (saved["epoch"], saved["batch"]) == (1, 1)
    second = Trainer(cfg, resume=True, progress=False)
    assert next(h for h in second.hooks if isinstance(h, DensityHook)).ready
    second.fit()
    second.close()
    final = torch.load(tmp_path / "run" / "checkpoint.pth", weights_only=True)
    d0 = [k for k in saved["losses"] if k.endswith("d0")]
    assert d0 and all(torch.equal(final["losses"][k], saved["losses"][k]) for k in d0)
    assert final["density_ready"] is True


@pytest.fixture(scope="module")
def trained_teacher(tiny_market, tmp_path_factory):
    run = tmp_path_factory.mktemp("teacher") / "run"
    cfg = tiny_config(run, tiny_market, [{"name": "softmax"}, {"name": "triplet"}],
                      {"classifier": "linear", "embedding_dim": 48},
                      train={"epochs": 1, "iters_per_epoch": 4, "eval_every": 0, "projector_samples": 0})
    trainer = Trainer(cfg, progress=False)
    trainer.fit()
    trainer.close()
    return config_file(cfg), run / "checkpoint.pth"


@pytest.mark.parametrize("terms", [
    [{"name": "darkrank", "mode": "soft", "list_length": 4}],
    [{"name": "darkrank", "mode": "hard"}],
    [{"name": "softmax"}, {"name": "kd", "temperature": 4.0}],
    [{"name": "fitnet"}],
    [{"name": "direct_match"}, {"name": "triplet"}],
], ids=["darkrank_soft", "darkrank_hard", "kd", "fitnet", "direct_match"])
def test_distillation_reduces_loss(terms, trained_teacher, tiny_market, tmp_path):
    teacher_config, teacher_checkpoint = trained_teacher
    cfg = tiny_config(tmp_path / "student", tiny_market, terms, {"classifier": "linear", "embedding_dim": 24},
                      distill={"teacher_config": str(teacher_config), "teacher_checkpoint": str(teacher_checkpoint)},
                      train={"epochs": 3, "iters_per_epoch": 4, "eval_every": 0, "projector_samples": 0})
    trainer = Trainer(cfg, progress=False)
    teacher_before = {k: v.clone() for k, v in trainer.teacher.state_dict().items()}
    before = fixed_batch_loss(trainer)
    trainer.fit()
    after = fixed_batch_loss(trainer)
    trainer.close()
    assert after < before
    # The teacher is frozen: not a single weight or BN statistic moved.
    assert all(torch.equal(v, trainer.teacher.state_dict()[k]) for k, v in teacher_before.items())
    assert not trainer.teacher.training


CONFIGS = sorted(p for p in (REPO / "configs").rglob("*.yaml") if "_base_" not in p.parts)


def test_every_experiment_has_a_config():
    names = {str(p.relative_to(REPO / "configs")) for p in CONFIGS}
    assert "synthetic_quick.yaml" in names
    for method in ("sn", "darkrank", "density", "horde", "hraml"):
        assert any(n.startswith(method + "/") for n in names), method


@pytest.mark.parametrize("path", CONFIGS, ids=[str(p.relative_to(REPO / "configs")) for p in CONFIGS])
def test_config_loads_and_builds(path):
    # Pretrained weights cannot be downloaded here: the architecture is what is checked.
    cfg = load_config(path, ["model.pretrained=none"])
    model = build_model_from_config(cfg, 10)
    losses = build_losses_from_config(cfg, 10, model)
    terms = cfg["loss"]["terms"]  # every configured term built, in order, with its class and weight
    assert [type(m) for m in losses.losses.values()] == [LOSSES.get(t["name"]) for t in terms]
    assert [s["weight"] for s in losses.specs] == [float(t.get("weight", 1.0)) for t in terms]
    model.eval()
    height, width = cfg["transforms"].get("height", 256), cfg["transforms"].get("width", 128)
    with torch.no_grad():
        out = model(torch.randn(2, 3, height, width), return_dict=True)
    assert out["normalized"].shape[0] == 2
