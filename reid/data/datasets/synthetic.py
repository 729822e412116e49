"""The embedded synthetic dataset: generated under `root` on first use, then read as Market-1501."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Union

from . import DATASETS
from .market1501 import Market1501


@DATASETS.register("synthetic")
class SyntheticMarket(Market1501):
    name = "synthetic"

    def __init__(self, root: Union[str, Path] = "datasets", num_ids: int = 300, num_cams: int = 6, seed: int = 0,
                 images_per_id_cam: int = 4, **market_kwargs: Any) -> None:
        from ..synthetic import generate

        folder = generate(root, num_ids=num_ids, num_cams=num_cams, seed=seed, images_per_id_cam=images_per_id_cam)
        super().__init__(folder, **market_kwargs)
