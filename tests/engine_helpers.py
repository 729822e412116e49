"""Shared set-up for the engine tests: a tiny generated Market-1501-layout dataset and tiny run configs."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from reid.config import load_config, save_config
from reid.engine.hooks import Hook, default_hooks

# Python source that makes `import albumentations` / `import numba` fail, run first in a subprocess (or as its
# sitecustomize.py): the machines without them (the lent GPU machine has torch, torchvision and opencv only).
BLOCK_OPTIONAL_DEPS = """
import importlib.abc, sys
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("albumentations", "numba"):
            raise ImportError("not installed here: " + name)
sys.meta_path.insert(0, _Block())
"""


def make_tiny_market(root: Path) -> Path:
    """A small synthetic dataset in the exact Market-1501 layout (8 training ids, 3 cameras)."""
    from reid.data.synthetic import generate

    return Path(generate(root, num_ids=16, num_cams=3, seed=1))


def tiny_config(run_dir: Path, data_root: Path, terms: List[Dict[str, Any]], model: Optional[Dict[str, Any]] = None,
                **sections: Dict[str, Any]) -> Dict[str, Any]:
    """A resolved config for a few CPU steps of the small backbone on 64x32 images."""
    raw: Dict[str, Any] = {
        "seed": 0,
        "output_dir": str(run_dir),
        "data": {"dataset": "market1501", "root": str(data_root), "p": 4, "k": 4, "num_workers": 0,
                 "test_batch_size": 64},
        "transforms": {"height": 64, "width": 32},
        "model": {"backbone": "small", "pretrained": "none", "embedding_dim": 32, **(model or {})},
        "loss": {"terms": terms},
        "optim": {"name": "adam", "lr": 1e-3},
        "schedule": {"name": "constant"},
        "train": {"epochs": 2, "iters_per_epoch": 3, "eval_every": 1, "device": "cpu", "log_every": 1,
                  "projector_samples": 8, "ranklist_queries": 2},
    }
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    path = Path(run_dir).parent / f"{Path(run_dir).name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_config(raw, path)
    return load_config(path)


def config_file(cfg: Dict[str, Any]) -> Path:
    """The YAML file `tiny_config` wrote for this config."""
    run_dir = Path(cfg["output_dir"])
    return run_dir.parent / f"{run_dir.name}.yaml"


def fixed_batch_loss(trainer) -> float:
    """The run's combined loss on one fixed batch of training images (train-mode BN, no update, no RNG use)."""
    samples = trainer.train_set
    pids = sorted({s.pid for s in samples})[:4]
    chosen = [s for pid in pids for s in [x for x in samples if x.pid == pid][:4]]
    loader = trainer.build_test_loader(chosen, trainer.test_transform_cfg, batch_size=len(chosen), num_workers=0)
    batch = next(iter(loader))
    teacher = trainer.teacher(batch["img"]) if trainer.teacher is not None else None
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        trainer.model.train()
        outputs = trainer.model(batch["img"], batch["pid"])
        total, _ = trainer.losses(outputs, batch["pid"], teacher)
    return float(total)


def state_equal(a: Dict[str, torch.Tensor], b: Dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)



class StopAtStep(Hook):
    """A trainer hook that asks the loop to stop after global step `step`, as Ctrl-C does (`stop_requested`): the
    trainer saves a checkpoint at that step boundary and raises TrainingInterrupted."""

    def __init__(self, step: int) -> None:
        self.step = step

    def after_step(self, trainer) -> None:
        if trainer.global_step == self.step:
            trainer.stop_requested = True


def stop_at_step(cfg: Dict[str, Any], step: int) -> List[Hook]:
    """The default hooks plus a stop request after global step `step` (the last hook: the others ran first)."""
    return default_hooks(cfg) + [StopAtStep(step)]
