"""Own data: (a) a folder per identity, (b) a CSV listing.

(a) `<root>/{train,query,gallery}/<identity>/<image>`; cameras parsed from file names with `camera_regex` (first
group = camera id), or, without a regex, every image is camera 0 and the dataset reports `has_cameras = False`
so that evaluation removes only the query itself, not same-camera matches.
(b) a CSV with a header `path,pid,camid,split` (split in train / query / gallery; paths relative to the CSV).
"""
from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Dict, List, Optional, Union

from . import DATASETS
from .base import DatasetError, ReIDDataset, Sample

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


@DATASETS.register("folder")
class FolderDataset(ReIDDataset):
    name = "folder"

    def __init__(self, root: Union[str, Path], camera_regex: Optional[str] = None) -> None:
        root = Path(root)
        pattern = re.compile(camera_regex) if camera_regex else None
        self.has_cameras = pattern is not None
        names: Dict[str, int] = {}
        splits: Dict[str, List[Sample]] = {}
        for split in ("train", "query", "gallery"):
            folder = root / split
            if not folder.is_dir():
                raise FileNotFoundError(f"own-data folder {folder} missing (expected {root}/train|query|gallery/"
                                        "<identity>/<image>)")
            splits[split] = []
            for ident in sorted(p for p in folder.iterdir() if p.is_dir()):
                pid = names.setdefault(ident.name, len(names) + 1)
                for path in sorted(p for p in ident.iterdir() if p.suffix.lower() in IMAGE_EXTS):
                    camid = 0
                    if pattern is not None:
                        match = pattern.search(path.name)
                        if match is None:
                            raise DatasetError(f"{path}: camera_regex {camera_regex!r} does not match the file name")
                        camid = int(match.group(1))
                    splits[split].append(Sample(str(path), pid, camid, {"identity": ident.name}))
        super().__init__(splits["train"], splits["query"], splits["gallery"])


@DATASETS.register("csv")
class CSVDataset(ReIDDataset):
    name = "csv"

    def __init__(self, root: Union[str, Path], file: Optional[str] = None) -> None:
        path = Path(root) / file if file else Path(root)
        if path.is_dir():
            path = path / "dataset.csv"
        if not path.is_file():
            raise FileNotFoundError(f"CSV listing {path} not found")
        splits: Dict[str, List[Sample]] = {"train": [], "query": [], "gallery": []}
        cameras = set()
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            missing = {"path", "pid", "camid", "split"} - set(reader.fieldnames or [])
            if missing:
                raise DatasetError(f"{path}: missing column(s) {', '.join(sorted(missing))}; "
                                   "expected header path,pid,camid,split")
            for line, row in enumerate(reader, 2):
                if row["split"] not in splits:
                    raise DatasetError(f"{path}:{line}: split {row['split']!r}, expected train, query or gallery")
                try:
                    pid, camid = int(row["pid"]), int(row["camid"] or 0)
                except ValueError:
                    raise DatasetError(f"{path}:{line}: pid and camid must be integers, got "
                                       f"{row['pid']!r}, {row['camid']!r}") from None
                cameras.add(camid)
                image = Path(row["path"])
                splits[row["split"]].append(Sample(str(image if image.is_absolute() else path.parent / image),
                                                   pid, camid))
        self.has_cameras = len(cameras) > 1
        super().__init__(splits["train"], splits["query"], splits["gallery"])
