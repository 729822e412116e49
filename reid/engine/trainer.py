"""The training loop: P x K batches, combined losses, optional teacher, checkpoints, exact resume; hooks do the rest.

Exact resume: every random choice of an epoch derives from (seed, epoch): the sampler's identity order and each
batch's augmentation (see `reid.data.train_loader`), so an epoch replays identically whatever the pipeline or the
number of loader workers; checkpoints carry the model, optimiser, scheduler, loss parameters, RNG states and the
position inside the epoch, and are taken only at step boundaries (Ctrl-C included: see `hooks.InterruptHook`), so
`--resume` continues bit for bit where the interrupted run stopped.
"""
from __future__ import annotations

import math
import signal
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
import torch

from ..config import ConfigError, resume_conflicts, save_config
from ..utils.progress import format_seconds, progress as progress_bar
from . import distributed
from ..builders import (build_dataset_from_config, build_losses_from_config, build_model_from_config,
                       resolve_device, train_samples)
from ..losses import LOSSES
from ..checkpoint import (CheckpointError, capture_rng_states, load_checkpoint, load_model_state,
                         restore_rng_states, save_checkpoint)
from .run_folder import RunLock, clear_previous_run, is_main_rank
from .hooks import Hook, default_hooks
from .monitor import Monitor, StepTimer, head_accuracy
from .optim import build_optimizer, build_scheduler, steps_per_iteration

RUN_FILES = ("checkpoint.pth", "best.pth", "config.yaml")


class TrainingDiverged(RuntimeError):
    """A loss term became NaN or infinite."""


class TrainingInterrupted(RuntimeError):
    """Ctrl-C or SIGTERM during training; a checkpoint was saved first. `exit_code`: 128 + the signal's number
    (130 for Ctrl-C, 143 for SIGTERM), the shell's convention for a process ended by that signal."""

    def __init__(self, message: str, signum: Optional[int] = None) -> None:
        super().__init__(message)
        self.exit_code = 128 + int(signum if signum is not None else signal.SIGINT)


class RunFolderExists(ConfigError):
    """Training without --resume into a folder that already holds a run."""


class Trainer:
    """Builds a run from a resolved config and trains it (`fit`)."""

    def __init__(self, cfg: Mapping[str, Any], resume: bool = False, progress: bool = True,
                 overwrite: bool = False, hooks: Optional[Sequence[Hook]] = None) -> None:
        self.run_dir = Path(cfg["output_dir"])
        if resume and overwrite:
            raise ConfigError("--resume and --overwrite contradict each other: --resume continues the run in "
                              f"'{self.run_dir}', --overwrite replaces it; give one")
        # One training per folder, taken before anything there is read, written or removed; held until the end
        # of fit() or close(). A refusal during set-up releases it and leaves no folder it created behind.
        self.lock: Optional[RunLock] = RunLock.acquire(self.run_dir) if is_main_rank() else None
        try:
            self._setup(cfg, resume, progress, overwrite, hooks)
        except BaseException as exc:
            monitor = getattr(self, "monitor", None)
            if monitor is not None:  # train.log says why the run did not start; no TensorBoard run was made
                monitor.log_failure(exc, "failed to start")
                monitor.close()
            self.release_lock(remove_empty_dir=True)
            raise

    def release_lock(self, remove_empty_dir: bool = False) -> None:
        if self.lock is not None:
            self.lock.release(remove_empty_dir)
            self.lock = None

    def _setup(self, cfg: Mapping[str, Any], resume: bool, progress: bool, overwrite: bool,
               hooks: Optional[Sequence[Hook]]) -> None:
        self.cfg = cfg
        self.progress = progress
        _check_run(cfg, self.run_dir, resume, overwrite)
        self.device = resolve_device(cfg["train"]["device"])
        if cfg["train"]["threads"]:
            torch.set_num_threads(int(cfg["train"]["threads"]))
        distributed.init_from_env(self.device)
        self.rank, self.world = distributed.rank(), distributed.world_size()
        torch.manual_seed(cfg["seed"])
        np.random.seed(cfg["seed"])
        torch.set_flush_denormal(bool(cfg["train"]["flush_denormal"]))

        self.dataset = build_dataset_from_config(cfg)  # before the Monitor: a missing dataset leaves no run folder
        _check_identities(cfg, self.dataset.num_train_pids, self.world)  # before the split is decoded
        # --overwrite: the folder holds only the new run (no best.pth or results of the old one beside it)
        removed = clear_previous_run(self.run_dir) if overwrite and self.lock is not None else []
        self.monitor = Monitor(self.run_dir)
        if removed:
            self.monitor.log(f"--overwrite: removed the previous run's {', '.join(removed)} from {self.run_dir}")
        self.num_classes = self.dataset.num_train_pids
        self.test_transform_cfg = cfg["transforms"]
        self.amp = bool(cfg["train"]["amp"]) and self.device.type == "cuda"
        self.channels_last = bool(cfg["train"]["channels_last"])
        from .data_setup import TrainingData

        self.data = TrainingData(cfg, self.run_dir, self.device, self.monitor, progress)
        self.train_set = self.data.filter_train(train_samples(self.dataset))
        if cfg["train"]["eval_every"] and distributed.is_main_process():
            self.data.check_test_splits(self.dataset)  # a bad query image found now, not after an epoch
        self.loader = self.data.train_loader(self.train_set, self.rank, self.world, self.channels_last)

        self.model = build_model_from_config(cfg, self.num_classes).to(self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.teacher = self._build_teacher()
        self.losses = build_losses_from_config(cfg, self.num_classes, self.model, self.teacher).to(self.device)
        self.optimizer = build_optimizer(self.model, cfg["optim"], self.losses.loss_parameters())
        self.lr_per_iteration = steps_per_iteration(cfg["schedule"])
        self.scheduler = build_scheduler(self.optimizer, cfg["schedule"], cfg["train"]["epochs"],
                                         self.loader.batches.per_epoch)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.net = self.model
        if distributed.is_distributed():
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=True)
        self.hooks: List[Hook] = list(default_hooks(cfg) if hooks is None else hooks)

        self.start_epoch, self.start_batch, self.global_step = 0, 0, 0
        self.best_metric, self.best_epoch = -1.0, -1
        self.stop_requested = False  # set by a hook (InterruptHook: Ctrl-C, SIGTERM); checked at step boundaries
        self.stop_signal: Optional[int] = None
        self.result = None
        if resume:
            self._resume()
        elif distributed.is_main_process():
            save_config(cfg, self.run_dir / "config.yaml")
        distributed.barrier()

    # ------------------------------------------------------------------ set-up helpers
    def _build_teacher(self):
        distill = self.cfg["distill"]
        if not distill["teacher_config"] and not distill["teacher_checkpoint"]:
            return None
        if not (distill["teacher_config"] and distill["teacher_checkpoint"]):
            raise ConfigError("distill.teacher_config and distill.teacher_checkpoint must be given together")
        from .distill import Teacher

        return Teacher(distill["teacher_config"], distill["teacher_checkpoint"], self.num_classes, self.device)

    def test_loader(self, samples: Sequence[Any], split: Optional[str]):
        """Ordered loader of `samples` with the test pipeline (decoded once when `split` names a cached split)."""
        return self.data.test_loader(samples, split)

    def build_test_loader(self, samples: Sequence[Any], transform_cfg: Any = None, batch_size: Optional[int] = None,
                          num_workers: int = 0):
        """Ordered loader of any samples with the test pipeline (per file; small sets such as D0 batches)."""
        from ..data.loader import build_test_loader

        return build_test_loader(samples, transform_cfg if transform_cfg is not None else self.test_transform_cfg,
                                 batch_size=batch_size or self.cfg["data"]["test_batch_size"], num_workers=num_workers)

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoint.pth"

    def state(self, epoch: int, batch: int) -> Dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "losses": self.losses.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": epoch,
            "batch": batch,
            "global_step": self.global_step,
            "sampler": {"seed": self.cfg["seed"], "epoch": epoch, "batch": batch},
            "rng": capture_rng_states(),
            "best_metric": self.best_metric,
            "best_epoch": self.best_epoch,
            "num_classes": self.num_classes,
            "pipeline": self.loader.pipeline,  # data.cache_max_gb (resume-safe) can switch it: see _resume
            "config": dict(self.cfg),
            **self._hook_entries(),
        }

    def _hook_entries(self) -> Dict[str, Any]:
        """The hooks' own state (`Hook.checkpoint_entries`, e.g. DensityHook's `density_ready`)."""
        entries: Dict[str, Any] = {}
        for hook in self.hooks:
            entries.update(hook.checkpoint_entries())
        return entries

    def save(self, epoch: int, batch: int, path: Optional[Path] = None) -> Optional[Path]:
        if not distributed.is_main_process():
            return None
        return save_checkpoint(self.state(epoch, batch), path or self.checkpoint_path)

    def _resume(self) -> None:
        state = load_checkpoint(self.checkpoint_path)
        conflicts = resume_conflicts(state.get("config", {}), self.cfg)
        if conflicts:
            raise CheckpointError(
                f"cannot resume {self.checkpoint_path}: the config changed in ways that matter: "
                + "; ".join(conflicts))
        saved = state.get("pipeline", self.loader.pipeline)  # older checkpoints did not record it
        if saved != self.loader.pipeline:  # the other pipeline draws other augmentations: not an exact resume
            max_gb = state.get("config", {}).get("data", {}).get("cache_max_gb")
            raise CheckpointError(
                f"cannot resume {self.checkpoint_path}: it was trained on the {saved} pipeline, this config gives "
                f"the {self.loader.pipeline} pipeline (data.cache_max_gb={self.cfg['data']['cache_max_gb']}, "
                f"the checkpoint's: {max_gb}); resume with data.cache_max_gb={max_gb}")
        load_model_state(self.model, state["model"], str(self.checkpoint_path))
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.losses.load_state_dict(state["losses"])
        self.scaler.load_state_dict(state["scaler"])
        self.start_epoch, self.start_batch = int(state["epoch"]), int(state["batch"])
        self.global_step = int(state["global_step"])
        self.best_metric, self.best_epoch = float(state["best_metric"]), int(state["best_epoch"])
        for hook in self.hooks:
            hook.load_checkpoint_entries(state)
        restore_rng_states(state["rng"])
        self.monitor.log(f"resumed from {self.checkpoint_path}: epoch {self.start_epoch}, batch {self.start_batch}")

    # ------------------------------------------------------------------ training
    def fit(self) -> Optional[Any]:
        cfg = self.cfg
        epochs = cfg["train"]["epochs"]
        self.monitor.log(f"training {cfg['model']['backbone']} on {cfg['data']['dataset']}: {len(self.train_set)} "
                         f"images, {self.num_classes} ids, {self.loader.batches.per_epoch} batches/epoch, "
                         f"{self.loader.pipeline} pipeline, device {self.device}, world size {self.world}")
        start = time.time()
        self.monitor.start_run(epochs * self.loader.batches.per_epoch, self.global_step)
        try:
            for hook in self.hooks:
                hook.before_train(self)
            for epoch in range(self.start_epoch, epochs):
                start_batch = self.start_batch if epoch == self.start_epoch else 0
                self.train_epoch(epoch, start_batch)
                if not self.lr_per_iteration:
                    self.scheduler.step()
                if (epoch + 1) % cfg["train"]["checkpoint_every"] == 0 or epoch + 1 == epochs:
                    self.save(epoch + 1, 0)
                for hook in self.hooks:
                    hook.after_epoch(self, epoch + 1)
                distributed.barrier()
            self.monitor.log(f"training done in {time.time() - start:.1f} s")
            if distributed.is_distributed():
                agree = distributed.parameters_agree(self.model)
                self.monitor.log(f"weights identical on all {self.world} ranks: {agree}")
                if not agree:
                    raise RuntimeError("DDP ranks finished with different weights; this is a bug, please report it")
            for hook in self.hooks:
                hook.after_train(self)
        except BaseException as exc:
            if not isinstance(exc, TrainingInterrupted):  # that one has logged where its checkpoint is
                self.monitor.log_failure(exc)
            raise
        finally:
            for hook in self.hooks:
                hook.close()
            self.release_lock()  # the run's writes are done, however fit() ended
        self.monitor.flush()
        return self.result

    def train_epoch(self, epoch: int, start_batch: int) -> None:
        """Epoch `epoch` (0-based) from batch `start_batch`, as fit() runs it: steps, hooks, stop requests, epoch
        scalars. Public so that benchmarks time the loop as it runs (benchmarks/train_loop_speed.py)."""
        self.model.train()
        self.loader.set_epoch(epoch, start_batch)
        lr = self.optimizer.param_groups[0]["lr"]
        bar = progress_bar(self.loader, f"epoch {epoch + 1}/{self.cfg['train']['epochs']}",
                           enabled=self.progress and distributed.is_main_process(), log=self.monitor.log)
        batch_index = start_batch
        sums: Dict[str, float] = {}
        self.monitor.clock.start_epoch()
        timer = StepTimer(bar)
        for batch in timer:
            lr = self.optimizer.param_groups[0]["lr"]  # the lr this step runs at
            terms = self.train_step(batch, epoch, batch_index)
            if self.lr_per_iteration:
                self.scheduler.step()
            batch_index += 1
            self.global_step += 1
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + value
            if self.global_step % self.cfg["train"]["log_every"] == 0:
                self.monitor.scalars({f"loss/{k}": v for k, v in terms.items()}, self.global_step)
                self.monitor.scalars({"lr": lr}, self.global_step)
                self.monitor.step_scalars(self.global_step, timer, self.train_accuracy)
            eta = self.monitor.clock.eta(self.global_step)
            bar.set_postfix(loss=f"{terms['total']:.4f}", lr=f"{lr:.2e}",
                            **({"run ETA": format_seconds(eta)} if eta is not None else {}))
            for hook in self.hooks:
                hook.after_step(self)
            if distributed.any_rank(self.stop_requested):
                path = self.save(epoch, batch_index)
                self.monitor.log(f"interrupted at epoch {epoch + 1}, batch {batch_index}: checkpoint saved to "
                                 f"{path}; continue with --resume")
                raise TrainingInterrupted(f"training interrupted; checkpoint saved to {path}", self.stop_signal)
        n = max(1, batch_index - start_batch)
        means = {k: v / n for k, v in sums.items()}
        self.monitor.epoch_scalars(means, epoch + 1, self.global_step, prefix="epoch_loss/")
        self.monitor.log(f"epoch {epoch + 1}: " + ", ".join(f"{k} {v:.4f}" for k, v in means.items())
                         + f", lr {lr:.2e}, {self.monitor.clock.epoch_text(self.global_step)}")

    def train_step(self, batch: Mapping[str, torch.Tensor], epoch: int, batch_index: int) -> Dict[str, float]:
        """One optimisation step on `batch`: the loss terms (floats, `total` included); a non-finite loss raises
        TrainingDiverged before any weight changes. Public for the same reason as `train_epoch`."""
        images = batch["img"].to(self.device, non_blocking=True)
        labels = batch["pid"].to(self.device, non_blocking=True)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        teacher_out = self.teacher(images) if self.teacher is not None else None
        with torch.autocast(device_type=self.device.type, enabled=self.amp):
            outputs = self.net(images, labels)
            total, terms = self.losses(outputs, labels, teacher_out, batch)
        self.train_accuracy = head_accuracy(outputs, labels)
        # one device-to-host copy per step: float() of each CUDA term would wait for the GPU once per term
        stacked = torch.stack([torch.as_tensor(v).detach().to(total.device, torch.float64)
                               for v in (*terms.values(), total)]).tolist()
        values = dict(zip(terms, stacked[:-1]))
        if not math.isfinite(stacked[-1]):
            bad = [n for n, v in values.items() if not math.isfinite(v)] or ["total"]
            last = (f"the last good checkpoint is {self.checkpoint_path}" if self.checkpoint_path.is_file()
                    else "no checkpoint was written yet")
            raise TrainingDiverged(
                f"loss term '{bad[0]}' became {values.get(bad[0], stacked[-1])} at epoch {epoch + 1}, batch "
                f"{batch_index} (step {self.global_step + 1}); {last}")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        distributed.average_gradients(self.losses.loss_parameters())
        if self.cfg["optim"]["clip_grad"]:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg["optim"]["clip_grad"])
        self.scaler.step(self.optimizer)
        self.scaler.update()
        values["total"] = stacked[-1]
        return values

    def evaluate(self, flip: Optional[bool] = None):
        """Evaluate on the dataset's query/gallery split (rank 0 only): (EvaluationResult, query, gallery)."""
        from .hooks import evaluate

        return evaluate(self, flip)

    def close(self) -> None:
        self.data.close()
        self.monitor.close()
        self.release_lock()


def needs_positives(term: Any) -> bool:
    """Whether a `loss.terms` entry compares images of one identity within a batch (with K = 1 it has nothing to
    compare: loss 0), as its registered loss class answers (`ReIDLoss.needs_positives`; wrappers ask their base).
    Unknown names answer False here: building the losses refuses them."""
    name = term.get("name") if isinstance(term, Mapping) else None
    return isinstance(name, str) and name in LOSSES and LOSSES.get(name).term_needs_positives(term)


def _check_identities(cfg: Mapping[str, Any], num_ids: int, world: int) -> None:
    """A P x K batch needs data.p identities on every rank: refused from the file list, before decoding a split
    (the sampler would say so only after the whole split was decoded)."""
    p = cfg["data"]["p"]
    # no identity at all: `train_samples` names the empty split, a clearer message
    if cfg["data"].get("sampler", "pk") == "pk" and 0 < num_ids and num_ids // world < p:
        per_rank = f" ({num_ids // world} per rank of {world})" if world > 1 else ""
        raise ConfigError(f"data.p={p}: a batch needs {p} identities but the training split of "
                          f"'{cfg['data']['dataset']}' under '{cfg['data']['root']}' has {num_ids}{per_rank}; "
                          f"expected data.p <= {num_ids // world}")


def _check_run(cfg: Mapping[str, Any], run_dir: Path, resume: bool, overwrite: bool) -> None:
    """Refusals that must come before anything is written: nothing to train, losses that would be 0, a run
    folder that would be overwritten."""
    if cfg["train"]["epochs"] < 1:
        raise ConfigError(f"train.epochs={cfg['train']['epochs']}: nothing to train (expected >= 1); to evaluate a "
                          "checkpoint use tools/test.py")
    if cfg["data"]["k"] < 2 and cfg["data"].get("sampler", "pk") == "pk":
        needy = [t["name"] for t in cfg["loss"]["terms"] if needs_positives(t)]
        if needy:
            raise ConfigError(f"data.k={cfg['data']['k']}: loss '{needy[0]}' compares images of one identity within "
                              "a batch and needs data.k >= 2 (with k=1 it is exactly 0)")
    if resume or overwrite or not distributed.is_main_process():
        return
    existing = [name for name in RUN_FILES if (run_dir / name).exists()]
    if existing:
        raise RunFolderExists(
            f"output_dir '{run_dir}' already holds a run ({', '.join(existing)}): continue it with --resume, "
            "replace it with --overwrite, or choose another output_dir")
