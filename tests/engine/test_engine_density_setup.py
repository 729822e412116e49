"""Density-adaptivity set-up (reid.engine.density_setup): D0 and the initial alpha_c measured over the training
images on the network at start or on a given checkpoint, against densities computed directly from the features."""
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from reid.checkpoint import CheckpointError, save_checkpoint
from reid.engine.density_setup import setup_density
from reid.engine.hooks import DensityHook
from reid.losses import CombinedLoss

NUM_CLASSES = 3
IMAGES = torch.randn(12, 5, generator=torch.Generator().manual_seed(0))
PIDS = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])


class Tiny(nn.Module):
    """A two-layer 'network': pooled = relu(W1 x), normalized = L2(W2 pooled)."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.body, self.head = nn.Linear(5, 6), nn.Linear(6, 4)

    def forward(self, x, labels=None, return_dict=False):
        pooled = F.relu(self.body(x))
        return {"pooled": pooled, "normalized": F.normalize(self.head(pooled), dim=1)}


def densities(x, y):
    """Naive per-class mean squared distance to the class centre."""
    return torch.stack([((x[y == c] - x[y == c].mean(0)) ** 2).sum(1).mean() for c in range(NUM_CLASSES)])


def fake_trainer(tmp_path, **loss_cfg):
    losses = CombinedLoss([{"name": "density_adaptivity", "num_classes": NUM_CLASSES, "base": "contrastive"}])
    batches = [{"img": IMAGES[i:i + 5], "pid": PIDS[i:i + 5]} for i in range(0, 12, 5)]
    logs = []
    cfg = {"loss": {"density_features": "pooled", **loss_cfg}, "transforms": {}, "data": {"test_batch_size": 5}}
    return SimpleNamespace(model=Tiny(1), losses=losses, train_set=list(range(12)), cfg=cfg,
                           device=torch.device("cpu"), build_test_loader=lambda *a, **k: batches,
                           monitor=SimpleNamespace(log=logs.append), progress=False,
                           num_classes=NUM_CLASSES, logs=logs)


def module_of(trainer):
    return trainer.losses.losses["density_adaptivity"]


def test_defaults_measure_d0_at_start_and_keep_the_papers_alpha(tmp_path):
    trainer = fake_trainer(tmp_path)
    hook = DensityHook()
    hook.before_train(trainer)
    with torch.no_grad():
        d0 = densities(trainer.model(IMAGES)["pooled"], PIDS)
    module = module_of(trainer)
    torch.testing.assert_close(module.d0, d0 / d0.mean())
    torch.testing.assert_close(module.alpha.detach(), torch.full((NUM_CLASSES,), 0.5))
    assert hook.ready and "network at start" in trainer.logs[0]
    assert hook.checkpoint_entries() == {"density_ready": True}
    module.d0.fill_(7.0)
    hook.before_train(trainer)  # already done: nothing is measured again
    assert (module.d0 == 7.0).all() and len(trainer.logs) == 1


def test_a_resumed_hook_does_not_measure_again(tmp_path):
    """The checkpoint's `density_ready` (the key older checkpoints have too) restores the hook's state."""
    trainer = fake_trainer(tmp_path)
    module = module_of(trainer)
    module.d0.fill_(7.0)
    hook = DensityHook()
    hook.load_checkpoint_entries({"density_ready": True, "epoch": 1})
    hook.before_train(trainer)
    assert (module.d0 == 7.0).all() and trainer.logs == []
    hook.load_checkpoint_entries({"epoch": 1})  # written without the hook: nothing was measured
    assert hook.checkpoint_entries() == {"density_ready": False}
    hook.before_train(trainer)
    with torch.no_grad():
        d0 = densities(trainer.model(IMAGES)["pooled"], PIDS)
    torch.testing.assert_close(module.d0, d0 / d0.mean())
    assert hook.ready and len(trainer.logs) == 1


def test_without_a_density_term_nothing_is_measured(tmp_path):
    trainer = fake_trainer(tmp_path)
    trainer.losses = CombinedLoss([{"name": "triplet"}])
    trainer.build_test_loader = None  # measuring would call it
    hook = DensityHook()
    hook.before_train(trainer)
    assert setup_density(trainer) is False
    assert hook.checkpoint_entries() == {"density_ready": False} and trainer.logs == []


def test_alpha_from_start_and_d0_from_checkpoint(tmp_path):
    other = Tiny(2)
    path = save_checkpoint({"model": other.state_dict()}, tmp_path / "pretrained.pth")
    trainer = fake_trainer(tmp_path, density_d0=str(path), density_init="start")
    setup_density(trainer)
    module = module_of(trainer)
    with torch.no_grad():
        d0 = densities(other(IMAGES)["pooled"], PIDS)  # the checkpoint's weights, not the network's
        start = densities(trainer.model(IMAGES)["normalized"], PIDS)  # the term's input at start
    torch.testing.assert_close(module.d0, d0 / d0.mean())
    torch.testing.assert_close(module.alpha.detach(), start)
    assert not torch.allclose(module.alpha.detach(), torch.full((NUM_CLASSES,), 0.5))
    assert trainer.model.training  # the trainer's model is left in training mode


def test_alpha_from_checkpoint(tmp_path):
    other = Tiny(3)
    path = save_checkpoint({"model": other.state_dict()}, tmp_path / "run" / "best.pth")
    trainer = fake_trainer(tmp_path, density_init=str(path))
    setup_density(trainer)
    with torch.no_grad():
        expect = densities(other(IMAGES)["normalized"], PIDS)
    torch.testing.assert_close(module_of(trainer).alpha.detach(), expect)


def test_missing_or_bad_checkpoint_names_key_and_file(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(FileNotFoundError, match=f"'loss.density_d0': checkpoint file {missing} not found"):
        setup_density(fake_trainer(tmp_path, density_d0=str(missing)))
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=f"'loss.density_init': cannot use checkpoint file {bad}"):
        setup_density(fake_trainer(tmp_path, density_init=str(bad)))
    wrong = save_checkpoint({"model": nn.Linear(2, 2).state_dict()}, tmp_path / "wrong.pth")
    with pytest.raises(CheckpointError, match="'loss.density_d0'.*does not fit the model"):
        setup_density(fake_trainer(tmp_path, density_d0=str(wrong)))
