"""Market-1501 (Zheng et al., ICCV 2015) in its released layout, plus the optional 500k distractors.

Layout (`Market-1501-v15.09.15/`): bounding_box_train, bounding_box_test, query, gt_bbox, and for the distractor
set `images/`. File names `0001_c1s1_001051_00.jpg` (id, camera, sequence, frame, box); 38 released files end in
`.jpg.jpg` and count. pid -1 = junk (never trained on, removed from rankings by the evaluation), pid 0 =
background kept in the gallery as a negative.
"""
from __future__ import annotations

import re
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from . import DATASETS
from .base import BACKGROUND_PID, DISTRACTOR_PID, DatasetError, ReIDDataset, Sample

NAME_PATTERN = re.compile(r"^(-1|\d{4})_c(\d)s(\d)_(\d{6})_(\d{2})\.jpg$")
RELEASE_FOLDER = "Market-1501-v15.09.15"
SPLITS = ("bounding_box_train", "bounding_box_test", "query")


# The synthetic set (reid.data.synthetic) has the release layout and a Market-like name: never taken for the real one.
SYNTHETIC_PREFIX = "Market-1501-synthetic-"


def find_market_root(root: Union[str, Path]) -> Path:
    """`root` itself when it holds the release folders, else its `Market-1501-v15.09.15` child.

    Only that exact release name is looked for inside `root`: another Market-like folder there (the synthetic set
    the quick start writes under datasets/, a renamed copy) is named in the error, never silently trained and
    evaluated on."""
    root = Path(root)
    if (root / "bounding_box_train").is_dir():  # named explicitly (the tests point at a synthetic copy this way)
        return root
    if (root / RELEASE_FOLDER / "bounding_box_train").is_dir():
        return root / RELEASE_FOLDER
    others = [(p, p.name.startswith(SYNTHETIC_PREFIX)) for p in sorted(root.glob("*arket*"))
              if (p / "bounding_box_train").is_dir()]
    found = "".join(f"; found {p}, " + ("the synthetic dataset (data.dataset=synthetic), not the release" if synthetic
                                        else f"not named {RELEASE_FOLDER} (if it is the release: data.root={p})")
                    for p, synthetic in others)
    raise FileNotFoundError(f"no Market-1501 release under {root} (expected {root / RELEASE_FOLDER}/"
                            f"bounding_box_train, bounding_box_test, query{found}; see datasets/README.md, "
                            "Market-1501)")


def parse_name(path: Path, strict: bool = True) -> Optional[Tuple[int, int]]:
    """(pid, camera index from 0) of a Market-style file name; None (or DatasetError when strict) otherwise."""
    name = path.name[:-4] if path.name.endswith(".jpg.jpg") else path.name
    match = NAME_PATTERN.match(name)
    problem = None
    if match is None:
        problem = (f"file name does not follow the Market-1501 pattern {NAME_PATTERN.pattern} "
                   "(e.g. 0001_c1s1_001051_00.jpg)")
    elif match.group(2) == "0":  # cameras are numbered from c1; c0 would become camera -1 and match nothing
        problem = "camera c0 in the file name; Market-1501 cameras are numbered from c1"
    if problem is not None:
        if strict:
            raise DatasetError(f"{path}: {problem}")
        warnings.warn(f"skipping {path}: {problem}")
        return None
    return int(match.group(1)), int(match.group(2)) - 1


def read_split(folder: Path, strict: bool = True) -> List[Sample]:
    if not folder.is_dir():
        raise FileNotFoundError(f"missing folder {folder} (expected the Market-1501 layout: bounding_box_train, "
                                "bounding_box_test, query, gt_bbox; see datasets/README.md, Market-1501)")
    samples = []
    for path in sorted(folder.iterdir()):
        if not path.name.lower().endswith(".jpg"):
            continue  # e.g. Thumbs.db shipped in the release
        parsed = parse_name(path, strict)
        if parsed is not None:
            samples.append(Sample(str(path), parsed[0], parsed[1]))
    if not samples:
        raise DatasetError(f"{folder} holds no images named like 0001_c1s1_001051_00.jpg (empty split)")
    return samples


@DATASETS.register("market1501")
class Market1501(ReIDDataset):
    name = "market1501"

    def __init__(self, root: Union[str, Path] = "datasets", distractors: Union[bool, str, Path] = False,
                 multi_query: bool = False, attributes: Union[bool, str, Path] = False, strict: bool = True,
                 extra_gallery: Optional[str] = None) -> None:
        """
        Args:
            distractors: True for `<release>/images` (the 500k set), or a folder path; appended to the gallery.
            multi_query: build `query_groups` from gt_bbox (same id and camera as each query).
            attributes: True for `<release>/market_attribute.mat` (or a path): per-identity vectors in extras.
            extra_gallery: "train" appends the training images (disjoint ids) to the gallery as negatives
                (a stand-in for the 500k distractors in gallery-size studies).
        """
        self.root = find_market_root(root)
        train = [s for s in read_split(self.root / "bounding_box_train", strict) if s.pid > BACKGROUND_PID]
        gallery = read_split(self.root / "bounding_box_test", strict)
        query = read_split(self.root / "query", strict)
        if attributes:
            from .market_attributes import attach_attributes

            path = self.root / "market_attribute.mat" if attributes is True else Path(attributes)
            attach_attributes(train, path, split="train")
            attach_attributes(query, path, split="test")
            attach_attributes(gallery, path, split="test")
        if distractors:
            folder = self.root / "images" if distractors is True else Path(distractors)
            if not folder.is_dir():
                raise FileNotFoundError(f"distractor folder {folder} not found (unzip distractors_500k.zip there; "
                                        "see datasets/README.md)")
            extra = read_split(folder, strict=False)
            gallery += [Sample(s.path, DISTRACTOR_PID, s.camid, {"distractor": True}) for s in extra]
        if extra_gallery == "train":
            gallery += [Sample(s.path, DISTRACTOR_PID, s.camid, {"distractor": True}) for s in train]
        elif extra_gallery is not None:
            raise DatasetError(f"extra_gallery: expected 'train' or null, got {extra_gallery!r}")
        groups = self._query_groups(query, strict) if multi_query else None
        super().__init__(train, query, gallery, groups)

    def _query_groups(self, query: List[Sample], strict: bool) -> List[List[str]]:
        boxes: Dict[Tuple[int, int], List[str]] = defaultdict(list)
        for s in read_split(self.root / "gt_bbox", strict):
            boxes[(s.pid, s.camid)].append(s.path)
        return [boxes.get((q.pid, q.camid)) or [q.path] for q in query]
