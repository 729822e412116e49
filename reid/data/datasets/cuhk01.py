"""CUHK01 (Li et al., ACCV 2012): `campus/*.png`, 971 ids x 4 images, two cameras.

`0001001.png`: the first 4 digits are the person id, the last 3 the image index; images 001-002 come from
camera A, 003-004 from camera B. Protocols: `num_test_ids` 486 (485 train) or 100 (871 train), 10 seeded random
splits (`split_id` 0..9); evaluation is single-shot: queries from camera A, gallery from camera B.
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Dict, List, Sequence, Set, Union

import numpy as np

from . import DATASETS
from .base import DatasetError, ReIDDataset, Sample

PATTERN = re.compile(r"^(\d{4})(\d{3})\.png$")
RELEASE_IDS = 971  # identities in the release: splits are drawn over this fixed range (see `_test_ids`)
IMAGES_PER_ID = 4
SHOWN = 10


def _test_ids(ids: Sequence[int], num_test_ids: int, seed: int, split_id: int) -> Set[int]:
    """The first `num_test_ids` present ids in a seeded order of the full id range 1..max(971, largest id).

    With every identity present this is exactly a seeded permutation of the ids (the long-standing splits). Drawn
    over the fixed range rather than over the ids found, a missing identity changes at most one test id (the next
    one in the order takes its place) instead of reshuffling the whole split.
    """
    universe = max(RELEASE_IDS, max(ids))
    order = np.random.default_rng([seed, split_id]).permutation(universe) + 1
    present = set(ids)
    return set([int(i) for i in order if int(i) in present][:num_test_ids])


def _missing(samples: Sequence[Sample]) -> List[str]:
    """Names of the images a complete release would hold but the folder lacks: ids 1..largest found, 4 each."""
    have: Dict[int, Set[int]] = {}
    for s in samples:
        have.setdefault(s.pid, set()).add(s.extras["index"])
    missing = []
    for pid in range(1, max(have) + 1):
        missing += [f"{pid:04d}{i:03d}.png" for i in range(1, IMAGES_PER_ID + 1) if i not in have.get(pid, ())]
    return missing


@DATASETS.register("cuhk01")
class CUHK01(ReIDDataset):
    name = "cuhk01"

    def __init__(self, root: Union[str, Path] = "datasets", num_test_ids: int = 486, split_id: int = 0,
                 seed: int = 0, allow_missing: bool = False) -> None:
        """`allow_missing`: go on (with a warning naming them) when images or identities are missing; by default
        that is an error, since the split would no longer be the published protocol's."""
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
            if pid == 0:
                raise DatasetError(f"{path}: CUHK01 identities are numbered from 0001")
            samples.append(Sample(str(path), pid, 0 if index <= 2 else 1, {"index": index}))
        missing = _missing(samples)
        if missing:
            listed = ", ".join(missing[:SHOWN]) + (f" and {len(missing) - SHOWN} more" if len(missing) > SHOWN else "")
            last = max(s.pid for s in samples)
            message = f"CUHK01 folder {folder} lacks {len(missing)} image(s) of ids 1..{last}: {listed}"
            if not allow_missing:
                raise DatasetError(f"{message}; restore them, or pass data.kwargs.allow_missing=true to go on "
                                   "without them (the split then differs from the published one)")
            warnings.warn(f"{message}; going on without them (allow_missing=true): the split differs from the "
                          "published one", stacklevel=2)
        ids = sorted({s.pid for s in samples})
        if not 0 < num_test_ids < len(ids):
            raise DatasetError(f"cuhk01 num_test_ids must be in 1..{len(ids) - 1}, got {num_test_ids}")
        if not 0 <= split_id < 10:
            raise DatasetError(f"cuhk01 split_id must be in 0..9, got {split_id}")
        test_ids = _test_ids(ids, num_test_ids, seed, split_id)
        train = [s for s in samples if s.pid not in test_ids]
        query = [s for s in samples if s.pid in test_ids and s.camid == 0]
        gallery = [s for s in samples if s.pid in test_ids and s.camid == 1]
        super().__init__(train, query, gallery)
