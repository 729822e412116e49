"""The training loader recipe: P x K batches with seeded augmentation, on decoded tensors or per-sample files.

Two pipelines behind one interface (`set_epoch(epoch, start_batch)`, iteration over batch dicts, `len`):
- "tensor" (default): the split is decoded once (`reid.data.cache`), each batch is gathered from the decoded
  array and augmented as a whole on the model's device (`reid.data.batch_augment`); no worker processes.
- "albumentations": per-sample file reading and the albumentations pipeline in DataLoader workers (kept alive
  across epochs); any albumentations transform can be configured. Its numbers are those of earlier releases.

Exact resume: every random choice of an epoch derives from (seed, epoch): the sampler's identity order, and per
batch the augmentation seeds from (seed, epoch, batch index), so an epoch replays identically whatever the number
of workers, and a loader can start in the middle of an epoch (`set_epoch(epoch, start_batch)`).
"""
from __future__ import annotations

from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence

import numpy as np
import torch

from ..registry import CHOICES
from .batch_augment import BatchAugment
from .cache import DecodedImages, decode_in_memory
from .loader import BatchFields, ImageDataset, ImageReadError, no_opencv_threads
from .sampler import PKSampler
from .transforms import build_transforms, resolve

PIPELINES = CHOICES["data.pipeline"]  # the two data paths above (the config's data.pipeline values)


class SeededBatches(torch.utils.data.Sampler):
    """Wraps a batch sampler: yields [(index, augmentation seed)], can start mid-epoch and stop after `limit`."""

    def __init__(self, batch_sampler: Any, seed: int, limit: Optional[int] = None) -> None:
        self.batch_sampler = batch_sampler
        self.seed = seed
        self.epoch = 0
        self.start_batch = 0
        self.limit = limit

    @property
    def per_epoch(self) -> int:
        return len(self.batch_sampler) if self.limit is None else self.limit

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch = epoch
        self.start_batch = start_batch
        self.batch_sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return max(0, self.per_epoch - self.start_batch)

    def batches(self) -> Iterator[List[int]]:
        """This epoch's index lists from `start_batch` on."""
        for b, batch in enumerate(_cycle(self.batch_sampler, self.per_epoch)):
            if b >= self.start_batch:
                yield batch

    def __iter__(self) -> Iterator[List[tuple]]:
        for b, batch in enumerate(self.batches(), start=self.start_batch):
            rng = np.random.default_rng([self.seed, self.epoch, b])
            seeds = rng.integers(0, 2**31 - 1, size=len(batch))
            yield [(int(i), int(s)) for i, s in zip(batch, seeds)]


def _cycle(batch_sampler: Any, stop: int) -> Iterator[List[int]]:
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

    def __init__(self, image_dataset: ImageDataset) -> None:
        self.image_dataset = image_dataset

    def __len__(self) -> int:
        return len(self.image_dataset)

    def __getitem__(self, item):
        index, seed = item
        self.image_dataset.transform.set_random_seed(seed)
        return self.image_dataset[index]


class EpochBatches:
    """The epoch interface both training loaders share: their `SeededBatches` decide which batches an epoch (or
    the rest of one, from `start_batch` on a resume) holds."""

    batches: SeededBatches

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.batches.set_epoch(epoch, start_batch)

    def __len__(self) -> int:
        return len(self.batches)


class AlbumentationsTrainLoader(EpochBatches):
    """Per-sample files + albumentations in DataLoader workers (persistent: no re-spawn each epoch)."""

    pipeline = "albumentations"

    def __init__(self, samples: Sequence[Any], transform_cfg: Optional[Mapping[str, Any]], batches: SeededBatches,
                 num_workers: int, on_error: str, seed: int, pin_memory: bool = False) -> None:
        self.batches = batches
        dataset = ImageDataset(samples, build_transforms(transform_cfg, train=True), on_error=on_error)
        self.loader = torch.utils.data.DataLoader(
            SeededDataset(dataset), batch_sampler=batches, num_workers=num_workers, pin_memory=pin_memory,
            persistent_workers=num_workers > 0, worker_init_fn=no_opencv_threads,
            # Own generator: creating an iterator must not advance the global RNG (exact resume).
            generator=torch.Generator().manual_seed(seed))

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        return iter(self.loader)


class TensorTrainLoader(EpochBatches):
    """Batches gathered from decoded images and augmented together on `device` (no worker processes)."""

    pipeline = "tensor"

    def __init__(self, samples: Sequence[Any], decoded: DecodedImages, transform_cfg: Optional[Mapping[str, Any]],
                 batches: SeededBatches, device: torch.device, rank: int = 0, channels_last: bool = False) -> None:
        if len(decoded) != len(samples):
            raise ValueError(f"decoded images ({len(decoded)}) and samples ({len(samples)}) differ in number")
        self.samples = list(samples)
        self.decoded = decoded
        self.batches = batches
        self.device = torch.device(device)
        self.rank = rank
        self.augment = BatchAugment(transform_cfg, train=True, channels_last=channels_last)
        self.fields = BatchFields(self.samples)

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        epoch, seed = self.batches.epoch, self.batches.seed
        for b, indices in enumerate(self.batches.batches(), start=self.batches.start_batch):
            images = self.decoded.batch(indices).to(self.device, non_blocking=True)
            batch = self.fields(indices)
            batch["img"] = self.augment(images, (seed, epoch, b, self.rank))
            yield batch


def build_train_loader(samples: Sequence[Any], transform_cfg: Optional[Mapping[str, Any]] = None, *, p: int = 16,
                       k: int = 4, seed: int = 0, pipeline: str = "tensor", decoded: Optional[DecodedImages] = None,
                       device: Any = "cpu", num_workers: int = 0, on_error: str = "raise",
                       iters_per_epoch: Optional[int] = None, rank: Optional[int] = None,
                       world_size: Optional[int] = None, batch_sampler: Any = None, channels_last: bool = False):
    """The training loader the trainer uses: P x K batches (or `batch_sampler`), seeded per (seed, epoch, batch).

    pipeline="tensor" needs the split's `decoded` images (`reid.data.cache`); "albumentations" reads files.
    """
    if pipeline not in PIPELINES:
        raise ValueError(f"data.pipeline: expected one of {', '.join(PIPELINES)}, got {pipeline!r}")
    if batch_sampler is None:
        batch_sampler = PKSampler([s.pid for s in samples], p=p, k=k, seed=seed, rank=rank, world_size=world_size)
    batches = SeededBatches(batch_sampler, seed, limit=iters_per_epoch)
    if pipeline == "tensor":
        if decoded is None:  # API use without a cache: decode the split into memory now
            decoded, bad = decode_in_memory([s.path for s in samples], *_size(transform_cfg))
            if bad:
                raise ImageReadError(f"{len(bad)} unreadable image(s): " + "; ".join(r for _, r in bad[:5]))
        loader = TensorTrainLoader(samples, decoded, transform_cfg, batches, device,
                                   rank=getattr(batch_sampler, "rank", 0) or 0, channels_last=channels_last)
    else:
        loader = AlbumentationsTrainLoader(samples, transform_cfg, batches, num_workers, on_error, seed,
                                           pin_memory=torch.device(device).type == "cuda")
    loader.set_epoch(0)
    return loader


def _size(transform_cfg: Optional[Mapping[str, Any]]) -> tuple:
    c = resolve(transform_cfg)
    return int(c["height"]), int(c["width"])
