"""Reading images and batching them: `ImageDataset`, train (P x K) and test (ordered) loaders."""
from __future__ import annotations

import warnings
from typing import Any, Dict, Iterator, Mapping, Optional, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .image_io import ON_ERROR, ImageReadError, read_image  # noqa: F401  (re-exported: strict reading lives there)
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
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error: expected {' or '.join(map(repr, ON_ERROR))}, got {on_error!r}")
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


class BatchFields:
    """The non-image fields of a batch (`pid`, `camid`, `index`, `attributes`), as `ImageDataset` gives them."""

    def __init__(self, samples: Sequence[Any]) -> None:
        self.pids = torch.tensor([int(s.pid) for s in samples], dtype=torch.long)
        self.camids = torch.tensor([int(s.camid) for s in samples], dtype=torch.long)
        dims = {len(s.extras["attributes"]) for s in samples if "attributes" in s.extras}
        self.attributes = None
        if dims:
            dim = dims.pop()
            self.attributes = torch.stack([
                torch.as_tensor(s.extras["attributes"], dtype=torch.float32) if "attributes" in s.extras
                else torch.full((dim,), float("nan")) for s in samples])

    def __call__(self, indices: Sequence[int]) -> Dict[str, Any]:
        idx = torch.as_tensor(list(indices), dtype=torch.long)
        batch = {"pid": self.pids[idx], "camid": self.camids[idx], "index": idx}
        if self.attributes is not None:
            batch["attributes"] = self.attributes[idx]
        return batch


class DecodedTestLoader:
    """Ordered batches of a decoded split (`reid.data.cache`), normalised: the test pipeline on tensors."""

    def __init__(self, samples: Sequence[Any], decoded: Any, transform_cfg: Optional[Mapping[str, Any]] = None,
                 batch_size: int = 128) -> None:
        from .batch_augment import BatchAugment

        if len(decoded) != len(samples):
            raise ValueError(f"decoded images ({len(decoded)}) and samples ({len(samples)}) differ in number")
        self.decoded = decoded
        self.batch_size = int(batch_size)
        self.normalize = BatchAugment(transform_cfg, train=False)
        self.fields = BatchFields(samples)

    def __len__(self) -> int:
        return -(-len(self.decoded) // self.batch_size)

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        for start in range(0, len(self.decoded), self.batch_size):
            indices = range(start, min(start + self.batch_size, len(self.decoded)))
            batch = self.fields(indices)
            batch["img"] = self.normalize(self.decoded.batch(indices))
            yield batch


def build_test_loader(samples: Sequence[Any], transform_cfg: Optional[Mapping[str, Any]] = None,
                      batch_size: int = 128, num_workers: int = 0, decoded: Any = None):
    """Ordered loader over `samples` with the test pipeline (resize + normalise); unreadable images raise.

    With `decoded` (the split's `reid.data.cache.DecodedImages`) batches come from the decoded array.
    """
    if decoded is not None:
        return DecodedTestLoader(samples, decoded, transform_cfg, batch_size)
    dataset = ImageDataset(samples, build_transforms(transform_cfg, train=False))
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                      worker_init_fn=no_opencv_threads)


def no_opencv_threads(worker_id: int) -> None:
    cv2.setNumThreads(0)  # workers are the parallelism; OpenCV threads would oversubscribe the cores
