"""The training loop: P x K batches, combined losses, optional teacher, evaluation, checkpoints, exact resume.

Exact resume: every random choice of an epoch derives from (seed, epoch): the sampler's identity order and each
image's augmentation seed (see `SeededBatches`), so an epoch replays identically whatever the number of loader
workers; checkpoints carry the model, optimiser, scheduler, loss parameters, RNG states and the position inside
the epoch, so `--resume` continues bit for bit where the interrupted run stopped.
"""
from __future__ import annotations

import itertools
import math
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

from ..config import resume_conflicts, save_config
from . import distributed
from .builders import (build_dataset_from_config, build_losses_from_config, build_model_from_config,
                       resolve_device, train_samples)
from .checkpoint import (CheckpointError, capture_rng_states, load_checkpoint, load_model_state,
                         restore_rng_states, save_checkpoint)
from .evaluator import evaluate_features, feature_set, ranked_gallery
from .monitor import Monitor
from .optim import build_optimizer, build_scheduler


class TrainingDiverged(RuntimeError):
    """A loss term became NaN or infinite."""


class TrainingInterrupted(RuntimeError):
    """Ctrl-C during training; a checkpoint was saved first."""


class SeededBatches(torch.utils.data.Sampler):
    """Wraps a P x K batch sampler: yields [(index, augmentation seed)] and can start mid-epoch."""

    def __init__(self, batch_sampler, seed: int) -> None:
        self.batch_sampler = batch_sampler
        self.seed = seed
        self.epoch = 0
        self.start_batch = 0
        self.limit: Optional[int] = None

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch = epoch
        self.start_batch = start_batch
        self.batch_sampler.set_epoch(epoch)

    def __len__(self) -> int:
        n = len(self.batch_sampler) if self.limit is None else self.limit
        return max(0, n - self.start_batch)

    def __iter__(self) -> Iterator[List[tuple]]:
        stop = len(self.batch_sampler) if self.limit is None else self.limit
        batches = _cycle(self.batch_sampler, stop)
        for b, batch in enumerate(batches):
            if b < self.start_batch:
                continue
            rng = np.random.default_rng([self.seed, self.epoch, b])
            seeds = rng.integers(0, 2**31 - 1, size=len(batch))
            yield [(int(i), int(s)) for i, s in zip(batch, seeds)]


def _cycle(batch_sampler, stop: int):
    """`stop` batches: the sampler's own epoch, continued with fresh passes when iters_per_epoch asks for more."""
    produced, sub = 0, 0
    base_epoch = batch_sampler.epoch if hasattr(batch_sampler, "epoch") else None
    while produced < stop:
        for batch in batch_sampler:
            yield batch
            produced += 1
            if produced >= stop:
                return
        sub += 1
        if base_epoch is not None:  # a deterministic, distinct continuation of the same epoch
            batch_sampler.set_epoch(base_epoch * 1000 + sub)
        if sub > 10000:
            return


class SeededDataset(torch.utils.data.Dataset):
    """Applies an image dataset's augmentation with a given per-item seed (albumentations' own RNG)."""

    def __init__(self, image_dataset) -> None:
        self.image_dataset = image_dataset

    def __len__(self) -> int:
        return len(self.image_dataset)

    def __getitem__(self, item):
        index, seed = item
        self.image_dataset.transform.set_random_seed(seed)
        return self.image_dataset[index]


class Trainer:
    """Builds a run from a resolved config and trains it (`fit`)."""

    def __init__(self, cfg: Mapping[str, Any], resume: bool = False, progress: bool = True,
                 interrupt_at_step: Optional[int] = None) -> None:
        from ..data import PKSampler
        from ..data.loader import ImageDataset, build_test_loader
        from ..data.transforms import build_transforms

        self.cfg = cfg
        self.progress = progress
        self.interrupt_at_step = interrupt_at_step  # tests: simulate Ctrl-C after this global step
        self.device = resolve_device(cfg["train"]["device"])
        if cfg["train"]["threads"]:
            torch.set_num_threads(int(cfg["train"]["threads"]))
        distributed.init_from_env(self.device)
        self.rank, self.world = distributed.rank(), distributed.world_size()
        self.run_dir = Path(cfg["output_dir"])
        self.monitor = Monitor(self.run_dir)
        torch.manual_seed(cfg["seed"])
        np.random.seed(cfg["seed"])

        self.dataset = build_dataset_from_config(cfg)
        self.train_set = train_samples(self.dataset)
        self.num_classes = self.dataset.num_train_pids
        data = cfg["data"]
        self.train_transform = build_transforms(cfg["transforms"], train=True)
        self.test_transform_cfg = cfg["transforms"]
        image_dataset = ImageDataset(self.train_set, self.train_transform, on_error=data["on_error"])
        pk = PKSampler([s.pid for s in self.train_set], p=data["p"], k=data["k"], seed=cfg["seed"],
                       rank=self.rank, world_size=self.world)
        self.batches = SeededBatches(pk, cfg["seed"])
        if cfg["train"]["iters_per_epoch"]:
            self.batches.limit = int(cfg["train"]["iters_per_epoch"])
        workers = data["num_workers"]
        self.loader = torch.utils.data.DataLoader(
            SeededDataset(image_dataset), batch_sampler=self.batches, num_workers=workers,
            pin_memory=self.device.type == "cuda", persistent_workers=False,
            # Own generator: creating an iterator must not advance the global RNG (exact resume).
            generator=torch.Generator().manual_seed(cfg["seed"]),
        )
        self.build_test_loader = build_test_loader

        self.model = build_model_from_config(cfg, self.num_classes).to(self.device)
        if cfg["train"]["channels_last"] and self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.teacher = self._build_teacher()
        self.losses = build_losses_from_config(cfg, self.num_classes, self.model, self.teacher).to(self.device)
        self.optimizer = build_optimizer(self.model, cfg["optim"], self.losses.loss_parameters())
        self.scheduler = build_scheduler(self.optimizer, cfg["schedule"], cfg["train"]["epochs"])
        self.amp = bool(cfg["train"]["amp"]) and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.net = self.model
        if distributed.is_distributed():
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=True)

        self.start_epoch, self.start_batch, self.global_step = 0, 0, 0
        self.best_metric, self.best_epoch = -1.0, -1
        self.density_ready = False
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
            raise ValueError("distill.teacher_config and distill.teacher_checkpoint must be given together")
        from .distill import Teacher

        return Teacher(distill["teacher_config"], distill["teacher_checkpoint"], self.num_classes, self.device)

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoint.pth"

    def _state(self, epoch: int, batch: int) -> Dict[str, Any]:
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
            "density_ready": self.density_ready,
            "num_classes": self.num_classes,
            "config": dict(self.cfg),
        }

    def save(self, epoch: int, batch: int, path: Optional[Path] = None) -> Optional[Path]:
        if not distributed.is_main_process():
            return None
        return save_checkpoint(self._state(epoch, batch), path or self.checkpoint_path)

    def _resume(self) -> None:
        state = load_checkpoint(self.checkpoint_path)
        conflicts = resume_conflicts(state.get("config", {}), self.cfg)
        if conflicts:
            raise CheckpointError(
                f"cannot resume {self.checkpoint_path}: the config changed in ways that matter: " + "; ".join(conflicts))
        load_model_state(self.model, state["model"], str(self.checkpoint_path))
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.losses.load_state_dict(state["losses"])
        self.scaler.load_state_dict(state["scaler"])
        self.start_epoch, self.start_batch = int(state["epoch"]), int(state["batch"])
        self.global_step = int(state["global_step"])
        self.best_metric, self.best_epoch = float(state["best_metric"]), int(state["best_epoch"])
        self.density_ready = bool(state["density_ready"])
        restore_rng_states(state["rng"])
        self.monitor.log(f"resumed from {self.checkpoint_path}: epoch {self.start_epoch}, batch {self.start_batch}")

    # ------------------------------------------------------------------ density adaptivity D0
    def _prepare_density(self) -> None:
        """Measure D0 (and optionally the initial alpha_c) once, before the first epoch (TMM'19): see
        reid.engine.density_setup (config keys loss.density_d0, loss.density_init, loss.density_features)."""
        from .density_setup import setup_density

        setup_density(self)

    # ------------------------------------------------------------------ training
    def fit(self) -> Optional[Any]:
        cfg = self.cfg
        epochs = cfg["train"]["epochs"]
        self._prepare_density()
        per_epoch = self.batches.limit or len(self.batches.batch_sampler)
        self.monitor.log(f"training {cfg['model']['backbone']} on {cfg['data']['dataset']}: {len(self.train_set)} "
                         f"images, {self.num_classes} ids, {per_epoch} batches/epoch, "
                         f"device {self.device}, world size {self.world}")
        result = None
        start = time.time()
        for epoch in range(self.start_epoch, epochs):
            start_batch = self.start_batch if epoch == self.start_epoch else 0
            self._train_epoch(epoch, start_batch)
            self.scheduler.step()
            if (epoch + 1) % cfg["train"]["checkpoint_every"] == 0 or epoch + 1 == epochs:
                self.save(epoch + 1, 0)
            due = cfg["train"]["eval_every"] and ((epoch + 1) % cfg["train"]["eval_every"] == 0 or epoch + 1 == epochs)
            if due:
                result = self._evaluate_and_track(epoch + 1)
            distributed.barrier()
        self.monitor.log(f"training done in {time.time() - start:.1f} s")
        if distributed.is_distributed():
            agree = distributed.parameters_agree(self.model)
            self.monitor.log(f"weights identical on all {self.world} ranks: {agree}")
            if not agree:
                raise RuntimeError("DDP ranks finished with different weights; this is a bug, please report it")
        if distributed.is_main_process() and cfg["train"]["projector_samples"]:
            self._write_projector()
        self.monitor.flush()
        return result

    def _train_epoch(self, epoch: int, start_batch: int) -> None:
        self.model.train()
        self.batches.set_epoch(epoch, start_batch)
        lr = self.optimizer.param_groups[0]["lr"]
        bar = tqdm(self.loader, desc=f"epoch {epoch + 1}/{self.cfg['train']['epochs']}", leave=False,
                   disable=not (self.progress and distributed.is_main_process()))
        batch_index = start_batch
        sums: Dict[str, float] = {}
        try:
            for batch in bar:
                terms = self._step(batch, epoch, batch_index)
                batch_index += 1
                self.global_step += 1
                for name, value in terms.items():
                    sums[name] = sums.get(name, 0.0) + value
                if self.global_step % self.cfg["train"]["log_every"] == 0:
                    self.monitor.scalars({f"loss/{k}": v for k, v in terms.items()}, self.global_step)
                    self.monitor.scalars({"lr": lr}, self.global_step)
                bar.set_postfix(loss=f"{terms['total']:.4f}", lr=f"{lr:.2e}")
                if self.interrupt_at_step is not None and self.global_step == self.interrupt_at_step:
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            path = self.save(epoch, batch_index)
            self.monitor.log(f"interrupted at epoch {epoch + 1}, batch {batch_index}: checkpoint saved to {path}; "
                             "continue with --resume")
            raise TrainingInterrupted(f"training interrupted; checkpoint saved to {path}") from None
        n = max(1, batch_index - start_batch)
        means = {k: v / n for k, v in sums.items()}
        self.monitor.scalars({f"epoch_loss/{k}": v for k, v in means.items()}, epoch + 1)
        self.monitor.log(f"epoch {epoch + 1}: " + ", ".join(f"{k} {v:.4f}" for k, v in means.items())
                         + f", lr {lr:.2e}")

    def _step(self, batch: Mapping[str, torch.Tensor], epoch: int, batch_index: int) -> Dict[str, float]:
        images = batch["img"].to(self.device, non_blocking=True)
        labels = batch["pid"].to(self.device, non_blocking=True)
        if self.cfg["train"]["channels_last"] and self.device.type == "cuda":
            images = images.contiguous(memory_format=torch.channels_last)
        teacher_out = self.teacher(images) if self.teacher is not None else None
        with torch.autocast(device_type=self.device.type, enabled=self.amp):
            outputs = self.net(images, labels)
            total, terms = self.losses(outputs, labels, teacher_out, batch)
        values = {name: float(v) for name, v in terms.items()}
        if not torch.isfinite(total.detach()):
            bad = [n for n, v in values.items() if not math.isfinite(v)] or ["total"]
            raise TrainingDiverged(
                f"loss term '{bad[0]}' became {values.get(bad[0], float(total.detach()))} at epoch {epoch + 1}, batch "
                f"{batch_index} (step {self.global_step + 1}); the last good checkpoint is {self.checkpoint_path}")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        distributed.average_gradients(self.losses.loss_parameters())
        if self.cfg["optim"]["clip_grad"]:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg["optim"]["clip_grad"])
        self.scaler.step(self.optimizer)
        self.scaler.update()
        values["total"] = float(total.detach())
        return values

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, flip: Optional[bool] = None):
        """Evaluate on the dataset's query/gallery split (rank 0 only); returns an EvaluationResult."""
        flip = self.cfg["train"]["flip_test"] if flip is None else flip
        bs = self.cfg["data"]["test_batch_size"]
        q_loader = self.build_test_loader(self.dataset.query, self.test_transform_cfg, batch_size=bs, num_workers=0)
        g_loader = self.build_test_loader(self.dataset.gallery, self.test_transform_cfg, batch_size=bs, num_workers=0)
        query = feature_set(self.model, self.dataset.query, q_loader, self.device, flip=flip, amp=self.amp,
                            desc="query", progress=self.progress)
        gallery = feature_set(self.model, self.dataset.gallery, g_loader, self.device, flip=flip, amp=self.amp,
                              desc="gallery", progress=self.progress)
        result = evaluate_features(query, gallery, self.cfg["test"], has_cameras=self.dataset.has_cameras)
        return result, query, gallery

    def _evaluate_and_track(self, epoch: int):
        if not distributed.is_main_process():
            return None
        with torch.random.fork_rng(devices=[]):  # evaluation must not shift the training RNG stream
            result, query, gallery = self.evaluate()
        self.monitor.log(f"evaluation after epoch {epoch}:\n{result.table()}")
        self.monitor.scalars({"mAP": result.mAP, "rank1": result.rank(1), "rank5": result.rank(5),
                              "mINP": result.mINP}, epoch, prefix="eval/")
        if self.cfg["train"]["ranklist_queries"]:
            self._ranklist_image(query, gallery, epoch)
        if result.mAP > self.best_metric:
            self.best_metric, self.best_epoch = result.mAP, epoch
            save_checkpoint(self._state(epoch, 0), self.run_dir / "best.pth")
        result.save_json(self.run_dir / f"results_epoch{epoch}.json")
        return result

    def _ranklist_image(self, query, gallery, epoch: int) -> None:
        from ..visualize import draw_ranklist

        rng = np.random.default_rng(self.cfg["seed"])
        picks = rng.choice(len(query.paths), size=min(self.cfg["train"]["ranklist_queries"], len(query.paths)),
                           replace=False)
        rows = []
        for q in picks:
            keep = ~((gallery.pids == query.pids[q]) & (gallery.camids == query.camids[q])) & (gallery.pids != -1)
            idx = np.flatnonzero(keep)
            order, dist = ranked_gallery(query.features[q], gallery.features[idx], topk=8)
            rows.append(draw_ranklist(query.paths[q], [gallery.paths[idx[i]] for i in order], dist,
                                      matches=[bool(gallery.pids[idx[i]] == query.pids[q]) for i in order]))
        width = max(r.shape[1] for r in rows)
        canvas = np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255)
                                 for r in rows])
        self.monitor.image("eval/ranklist", canvas, epoch)

    def _write_projector(self) -> None:
        """Embedding projector for a sample of the test set, with thumbnails."""
        n = min(self.cfg["train"]["projector_samples"], len(self.dataset.gallery))
        rng = np.random.default_rng(self.cfg["seed"])
        picks = sorted(rng.choice(len(self.dataset.gallery), size=n, replace=False).tolist())
        samples = [self.dataset.gallery[i] for i in picks]
        small = dict(self.test_transform_cfg or {})
        loader = self.build_test_loader(samples, small, batch_size=self.cfg["data"]["test_batch_size"], num_workers=0)
        fs = feature_set(self.model, samples, loader, self.device, desc="projector", progress=self.progress)
        thumbs = _thumbnails([s.path for s in samples])
        self.monitor.embedding(fs.features, [f"{p}" for p in fs.pids], thumbs, self.global_step)

    def close(self) -> None:
        self.monitor.close()


def _thumbnails(paths: Sequence[str], size=(32, 16)) -> torch.Tensor:
    import cv2

    out = []
    for p in paths:
        img = cv2.imread(p, cv2.IMREAD_COLOR)
        img = np.zeros((size[0], size[1], 3), np.uint8) if img is None else cv2.resize(img, (size[1], size[0]))
        out.append(torch.from_numpy(cv2.cvtColor(img, cv2.COLOR_BGR2RGB)).permute(2, 0, 1).float() / 255)
    return torch.stack(out)
