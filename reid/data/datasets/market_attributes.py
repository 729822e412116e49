"""Market-1501 attribute annotations (Lin et al. 2019): `market_attribute.mat`, 27 attributes per identity.

The .mat holds a struct `market_attribute` with `train` and `test` structs; each field is a (num_ids,) vector
with 1 = no / 2 = yes (age: 1..4 = young, teenager, adult, old), and `image_index` lists the 4-digit ids.
Vectors are attached to samples as `extras["attributes"]` (float32, 27 values in [0, 1]: binary fields mapped to
0/1 and age to (age - 1) / 3), in a fixed field order (`ATTRIBUTES`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import numpy as np

from .base import DatasetError, Sample

ATTRIBUTES = ("age", "backpack", "bag", "handbag", "downblack", "downblue", "downbrown", "downgray", "downgreen",
              "downpink", "downpurple", "downwhite", "downyellow", "upblack", "upblue", "upgreen", "upgray",
              "uppurple", "upred", "upwhite", "upyellow", "clothes", "down", "up", "hair", "hat", "gender")


def load_attributes(path: Path, split: str) -> Dict[int, np.ndarray]:
    from scipy.io import loadmat

    if not Path(path).is_file():
        raise FileNotFoundError(f"attribute file {path} not found (market_attribute.mat; see datasets/README.md)")
    mat = loadmat(path, squeeze_me=True, struct_as_record=False)
    if "market_attribute" not in mat:
        raise DatasetError(f"{path}: expected a struct 'market_attribute'")
    table = getattr(mat["market_attribute"], split, None)
    if table is None:
        raise DatasetError(f"{path}: market_attribute has no '{split}' part")
    missing = [a for a in ATTRIBUTES + ("image_index",) if not hasattr(table, a)]
    if missing:
        raise DatasetError(f"{path}: market_attribute.{split} lacks field(s) {', '.join(missing)}")
    ids = [int(str(x)) for x in np.atleast_1d(table.image_index)]
    columns = []
    for name in ATTRIBUTES:
        values = np.atleast_1d(getattr(table, name)).astype(np.float32)
        columns.append((values - 1) / 3 if name == "age" else values - 1)
    matrix = np.stack(columns, axis=1)
    return {pid: matrix[i] for i, pid in enumerate(ids)}


def attach_attributes(samples: List[Sample], path: Path, split: str) -> None:
    table = load_attributes(path, split)
    for s in samples:
        if s.pid in table:
            s.extras["attributes"] = table[s.pid]
