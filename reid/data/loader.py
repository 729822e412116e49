"""Reading images and batching them: `ImageDataset`, train (P x K) and test (ordered) loaders."""
from __future__ import annotations

import warnings
from typing import Any, Dict, Mapping, Optional, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .image_io import ImageReadError, read_image  # noqa: F401  (re-exported: strict reading lives there)
from .sampler import PKSampler
from .transforms import build_transforms


class ImageDataset(Dataset):
    """Samples -> {"img", "pid", "camid", "index"} (+ "attributes" when samples carry them).

    on_error="skip": an unreadable image is replaced by another image of the same identity, chosen at random
    (deterministic per index) among the readable ones, so training keeps its P x K structure; a warning is
    issued and `skipped` counts the replacements (per process: with workers each keeps its own count). When the
    identity has no other readable image the error is raised. on_error="raise" raises at once; test loaders use
    it, since substituting an image would corrupt the evaluation.
    """

    def __init__(self, samples: Sequence[Any], transform=None, on_error: str = "raise") -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error: expected 'raise' or 'skip', got {on_error!r}")
        self.samples = list(samples)
        self.transform = transform
        self.on_error = on_error
        self.skipped = 0
        # Attribute vectors: when some samples carry them, all items do (NaN where unknown, e.g. junk) so that
        # batches collate.
        dims = {len(s.extras["attributes"]) for s in self.samples if "attributes" in s.extras}
        self.attribute_dim = dims.pop() if dims else None
        self._by_pid: Dict[int, list] = {}
        for i, s in enumerate(self.samples):
            self._by_pid.setdefault(s.pid, []).append(i)

    def __len__(self) -> int:
        return len(self.samples)

    def _load(self, index: int) -> np.ndarray:
        try:
            return read_image(self.samples[index].path)
        except ImageReadError as exc:
            if self.on_error == "raise":
                raise
            self.skipped += 1
            warnings.warn(f"skipping unreadable image ({self.skipped} so far): {exc}")
            others = [o for o in self._by_pid.get(self.samples[index].pid, []) if o != index]
            for other in np.random.default_rng(index).permutation(others).tolist() if others else []:
                try:
                    return read_image(self.samples[other].path)
                except ImageReadError:
                    continue
            raise

    def __getitem__(self, index: int) -> Dict[str, Any]:
        sample = self.samples[index]
        img = self._load(index)
        tensor = self.transform(image=img)["image"] if self.transform is not None else torch.from_numpy(img)
        item = {"img": tensor, "pid": int(sample.pid), "camid": int(sample.camid), "index": index}
        if self.attribute_dim is not None:
            attrs = sample.extras.get("attributes")
            item["attributes"] = (torch.as_tensor(attrs, dtype=torch.float32) if attrs is not None
                                  else torch.full((self.attribute_dim,), float("nan")))
        return item


def _worker_init(worker_id: int) -> None:
    """Disable OpenCV threading and seed this worker's augmentation RNG.

    `get_worker_info().seed` is derived from the DataLoader's generator (seeded in `build_train_loader`) and
    the worker id, so the augmentations are reproducible for a given seed and number of workers.
    """
    cv2.setNumThreads(0)  # workers are the parallelism; OpenCV threads would oversubscribe the cores
    info = torch.utils.data.get_worker_info()
    transform = getattr(info.dataset, "transform", None) if info is not None else None
    if transform is not None and hasattr(transform, "set_random_seed"):
        transform.set_random_seed(info.seed % 2**32)


def build_train_loader(samples: Sequence[Any], transform_cfg: Optional[Mapping[str, Any]] = None, p: int = 16,
                       k: int = 4, seed: int = 0, num_workers: int = 0, rank: Optional[int] = None,
                       world_size: Optional[int] = None, on_error: str = "raise") -> DataLoader:
    """P x K training loader (`PKSampler`); augmentations seeded from `seed` (see `_worker_init`)."""
    dataset = ImageDataset(samples, build_transforms(transform_cfg, train=True, seed=seed), on_error)
    sampler = PKSampler([s.pid for s in samples], p, k, seed=seed, rank=rank, world_size=world_size)
    return DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers, worker_init_fn=_worker_init,
                      persistent_workers=num_workers > 0, generator=torch.Generator().manual_seed(seed))


def build_test_loader(samples: Sequence[Any], transform_cfg: Optional[Mapping[str, Any]] = None,
                      batch_size: int = 128, num_workers: int = 0) -> DataLoader:
    """Ordered loader over `samples` with the test pipeline (resize + normalise); unreadable images raise."""
    dataset = ImageDataset(samples, build_transforms(transform_cfg, train=False))
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                      worker_init_fn=_worker_init)
