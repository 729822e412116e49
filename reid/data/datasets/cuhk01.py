"""CUHK01 (Li et al., ACCV 2012): `campus/*.png`, 971 ids x 4 images, two cameras.

`0001001.png`: the first 4 digits are the person id, the last 3 the image index; images 001-002 come from
camera A, 003-004 from camera B. Protocols: `num_test_ids` 486 (485 train) or 100 (871 train), 10 seeded random
splits (`split_id` 0..9); evaluation is single-shot: queries from camera A, gallery from camera B.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Union

import numpy as np

from . import DATASETS
from .base import DatasetError, ReIDDataset, Sample

PATTERN = re.compile(r"^(\d{4})(\d{3})\.png$")


@DATASETS.register("cuhk01")
class CUHK01(ReIDDataset):
    name = "cuhk01"

    def __init__(self, root: Union[str, Path] = "datasets", num_test_ids: int = 486, split_id: int = 0,
                 seed: int = 0) -> None:
        root = Path(root)
        folder = next((c for c in (root / "campus", root / "cuhk01" / "campus", root) if c.is_dir() and
                       any(c.glob("*.png"))), None)
        if folder is None:
            raise FileNotFoundError(f"CUHK01 images not found (expected {root / 'campus'}/0001001.png ...)")
        samples = []
        for path in sorted(folder.glob("*.png")):
            match = PATTERN.match(path.name)
            if match is None:
                raise DatasetError(f"{path}: CUHK01 names are 7 digits + .png (e.g. 0001001.png)")
            pid, index = int(match.group(1)), int(match.group(2))
            samples.append(Sample(str(path), pid, 0 if index <= 2 else 1))
        ids = sorted({s.pid for s in samples})
        if not 0 < num_test_ids < len(ids):
            raise DatasetError(f"cuhk01 num_test_ids must be in 1..{len(ids) - 1}, got {num_test_ids}")
        if not 0 <= split_id < 10:
            raise DatasetError(f"cuhk01 split_id must be in 0..9, got {split_id}")
        rng = np.random.default_rng([seed, split_id])
        test_ids = set(np.asarray(ids)[rng.permutation(len(ids))[:num_test_ids]].tolist())
        train = [s for s in samples if s.pid not in test_ids]
        query = [s for s in samples if s.pid in test_ids and s.camid == 0]
        gallery = [s for s in samples if s.pid in test_ids and s.camid == 1]
        super().__init__(train, query, gallery)
