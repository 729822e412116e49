"""Dataset adapters: one registry, each adapter producing a `ReIDDataset` from the release's on-disk format."""
from __future__ import annotations

from typing import Any

from ...registry import Registry
from .base import BACKGROUND_PID, DISTRACTOR_PID, JUNK_PID, DatasetError, ReIDDataset, Sample

DATASETS = Registry("dataset")


def build_dataset(name: str, root: str = "datasets", **kwargs: Any) -> ReIDDataset:
    return DATASETS.build(name, root=root, **kwargs)


from . import cuhk01, cuhk03, folder, market1501, synthetic  # noqa: E402,F401  (registration)

__all__ = ["DATASETS", "build_dataset", "Sample", "ReIDDataset", "DatasetError", "JUNK_PID", "BACKGROUND_PID",
           "DISTRACTOR_PID"]
