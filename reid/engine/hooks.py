"""Trainer hooks: what happens around the training loop, each a small class receiving the trainer.

The trainer calls, in list order, `before_train(trainer)`, `after_step(trainer)` after every optimisation
step, `after_epoch(trainer, epoch)` (1-based, after the scheduler step and the epoch checkpoint) and
`after_train(trainer)`; `close()` always runs. A hook sees the trainer only as `TrainerView` (its public
attributes) and imports nothing of `trainer.py`. A hook with state of its own that a resume must restore
returns it from `checkpoint_entries()` (written into every checkpoint) and reads it back in
`load_checkpoint_entries(state)`.
"""
from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Protocol, Sequence, Tuple

import numpy as np
import torch

from . import distributed
from ..checkpoint import save_checkpoint
from .density_setup import setup_density
from .evaluator import FeatureSet, evaluate_features, feature_set
from .monitor import Monitor
from .ranklists import draw_ranklists


class TrainerView(Protocol):
    """The part of the trainer a hook may read (and, for the stop request and the best result, set).

    A protocol rather than the `Trainer` class: hooks stay importable without the loop, and a test can hand a
    hook any object with these attributes.
    """

    cfg: Mapping[str, Any]
    model: torch.nn.Module
    losses: torch.nn.Module
    monitor: Monitor
    device: torch.device
    dataset: Any
    train_set: Sequence[Any]
    num_classes: int
    run_dir: Path
    amp: bool
    progress: bool
    global_step: int
    stop_requested: bool
    stop_signal: Optional[int]
    best_metric: float
    best_epoch: int
    result: Optional[Any]

    def test_loader(self, samples: Sequence[Any], split: Optional[str]) -> Any: ...

    def state(self, epoch: int, batch: int) -> Dict[str, Any]: ...


class Hook:
    def before_train(self, trainer: TrainerView) -> None:
        pass

    def after_step(self, trainer: TrainerView) -> None:
        pass

    def after_epoch(self, trainer: TrainerView, epoch: int) -> None:
        pass

    def after_train(self, trainer: TrainerView) -> None:
        pass

    def close(self) -> None:
        pass

    def checkpoint_entries(self) -> Dict[str, Any]:
        """Top-level checkpoint entries holding this hook's state (none by default)."""
        return {}

    def load_checkpoint_entries(self, state: Mapping[str, Any]) -> None:
        """Restore this hook's state from a checkpoint being resumed."""


class DensityHook(Hook):
    """Density adaptivity (TMM'19): D0 (and optionally the initial alpha_c) measured once before the first step
    (see `density_setup`: loss.density_d0, loss.density_init, loss.density_features).

    `ready` says that it was measured; it travels in the checkpoint as `density_ready` (the key checkpoints had
    when the flag lived on the trainer, so they still resume), so a resumed run keeps the measured values
    (restored with the loss parameters) instead of measuring its half-trained network again.
    """

    KEY = "density_ready"

    def __init__(self) -> None:
        self.ready = False

    def before_train(self, trainer: TrainerView) -> None:
        if not self.ready:
            self.ready = setup_density(trainer)

    def checkpoint_entries(self) -> Dict[str, Any]:
        return {self.KEY: self.ready}

    def load_checkpoint_entries(self, state: Mapping[str, Any]) -> None:
        # a checkpoint written without this hook never measured anything
        self.ready = bool(state.get(self.KEY, False))


class InterruptHook(Hook):
    """Ctrl-C (SIGINT) and SIGTERM (docker stop, SLURM preemption, kill) ask the loop to stop at the next step
    boundary, where the state is consistent; the trainer then saves a checkpoint and the CLI exits 130 / 143.

    Stopping inside a step would leave the step half applied (batch-norm running statistics already updated by
    the forward pass, weights not yet): a resume would replay the batch on top of it. A second signal stops at
    once without a checkpoint.
    """

    SIGNALS = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}

    def __init__(self) -> None:
        self.previous: dict = {}

    def before_train(self, trainer: TrainerView) -> None:
        trainer.stop_requested = False
        trainer.stop_signal = None
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be installed from the main thread

        def handler(signum: int, frame: Any) -> None:
            if trainer.stop_requested:
                self.close()  # the previous handlers: a third signal finds Python's own
                if signum == signal.SIGTERM:
                    os.kill(os.getpid(), signal.SIGTERM)  # die of it at once, as without a handler
                raise KeyboardInterrupt
            trainer.stop_requested = True
            trainer.stop_signal = signum
            name = self.SIGNALS.get(signum, f"signal {signum}")
            trainer.monitor.log(f"{name}: stopping after the current step and saving a checkpoint (a second "
                                f"{name} stops at once, without one)")

        for signum in self.SIGNALS:
            self.previous[signum] = signal.signal(signum, handler)

    def close(self) -> None:
        for signum, previous in self.previous.items():
            fallback = signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL
            signal.signal(signum, previous if previous is not None else fallback)
        self.previous = {}


class EvalHook(Hook):
    """Evaluation every `train.eval_every` epochs and at the last: results JSON, TensorBoard, best checkpoint."""

    def after_epoch(self, trainer: TrainerView, epoch: int) -> None:
        every, epochs = trainer.cfg["train"]["eval_every"], trainer.cfg["train"]["epochs"]
        if not every or not (epoch % every == 0 or epoch == epochs) or not distributed.is_main_process():
            return
        with torch.random.fork_rng(devices=[]):  # evaluation must not shift the training RNG stream
            result, query, gallery = evaluate(trainer)
        trainer.monitor.log(f"evaluation after epoch {epoch}:\n{result.table()}")
        trainer.monitor.epoch_scalars({"mAP": result.mAP, "rank1": result.rank(1), "rank5": result.rank(5),
                                       "mINP": result.mINP}, epoch, trainer.global_step, prefix="eval/")
        if trainer.cfg["train"]["ranklist_queries"]:
            ranklist_image(trainer, query, gallery)
        if result.mAP > trainer.best_metric:
            trainer.best_metric, trainer.best_epoch = result.mAP, epoch
            save_checkpoint(trainer.state(epoch, 0), trainer.run_dir / "best.pth")
        result.save_json(trainer.run_dir / f"results_epoch{epoch}.json")
        trainer.result = result


def evaluate(trainer: TrainerView, flip: Optional[bool] = None) -> Tuple[Any, FeatureSet, FeatureSet]:
    """The run's model on its dataset's query/gallery split: (EvaluationResult, query, gallery feature sets)."""
    flip = trainer.cfg["train"]["flip_test"] if flip is None else flip
    sets = []
    for name, samples in (("query", trainer.dataset.query), ("gallery", trainer.dataset.gallery)):
        loader = trainer.test_loader(samples, name)
        sets.append(feature_set(trainer.model, samples, loader, trainer.device, flip=flip, amp=trainer.amp,
                                desc=name, progress=trainer.progress))
    query, gallery = sets
    result = evaluate_features(query, gallery, trainer.cfg["test"], has_cameras=trainer.dataset.has_cameras)
    return result, query, gallery


def ranklist_image(trainer: TrainerView, query: FeatureSet, gallery: FeatureSet) -> None:
    """A few queries' top-8 gallery images, ranked as the evaluation ranks them, as one TensorBoard image."""
    rows = [image for _, image in draw_ranklists(query, gallery, trainer.cfg["train"]["ranklist_queries"],
                                                 seed=trainer.cfg["seed"], topk=8,
                                                 has_cameras=trainer.dataset.has_cameras,
                                                 camera_base=getattr(trainer.dataset, "camera_base", 1))]
    width = max(r.shape[1] for r in rows)
    canvas = np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255)
                             for r in rows])
    trainer.monitor.image("eval/ranklist", canvas, trainer.global_step)


class ProjectorHook(Hook):
    """TensorBoard embedding projector for a sample of the gallery, with thumbnails, after training."""

    def after_train(self, trainer: TrainerView) -> None:
        n = min(trainer.cfg["train"]["projector_samples"], len(trainer.dataset.gallery))
        if not n or not distributed.is_main_process():
            return
        rng = np.random.default_rng(trainer.cfg["seed"])
        picks = sorted(rng.choice(len(trainer.dataset.gallery), size=n, replace=False).tolist())
        samples = [trainer.dataset.gallery[i] for i in picks]
        loader = trainer.test_loader(samples, None)
        fs = feature_set(trainer.model, samples, loader, trainer.device, desc="projector", progress=trainer.progress)
        trainer.monitor.embedding(fs.features, [f"{p}" for p in fs.pids], _thumbnails([s.path for s in samples]),
                                  trainer.global_step)


def _thumbnails(paths: Sequence[str], size=(32, 16)) -> torch.Tensor:
    import cv2

    out = []
    for p in paths:
        img = cv2.imread(p, cv2.IMREAD_COLOR)
        img = np.zeros((size[0], size[1], 3), np.uint8) if img is None else cv2.resize(img, (size[1], size[0]))
        out.append(torch.from_numpy(cv2.cvtColor(img, cv2.COLOR_BGR2RGB)).permute(2, 0, 1).float() / 255)
    return torch.stack(out)


def default_hooks(cfg: Any) -> List[Hook]:
    """The trainer's hooks in call order."""
    return [InterruptHook(), DensityHook(), EvalHook(), ProjectorHook()]
