"""Own data: (a) a folder per identity, (b) a CSV listing.

(a) `<root>/{train,query,gallery}/<identity>/<image>`; cameras parsed from file names with `camera_regex` (first
group = camera id), or, without a regex, every image is camera 0 and the dataset reports `has_cameras = False`
so that evaluation removes only the query itself, not same-camera matches.
(b) a CSV with a header `path,pid,camid,split` (split in train / query / gallery; paths relative to the CSV).

Every image must resolve (symlinks followed) inside the data root (the CSV's folder for (b)): a listing such as
`../../etc/passwd` or a link out of the tree is refused unless `allow_outside_root=True`, and listed files that do
not exist are refused up front, all named in one error.
"""
from __future__ import annotations

import csv
import os
import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from ..image_io import IMAGE_EXTS
from . import DATASETS
from .base import DatasetError, ReIDDataset, Sample

SHOWN = 10


def _check_paths(root: Path, paths: List[Tuple[str, Path]], allow_outside_root: bool) -> None:
    """Refuse, in one DatasetError, listed images that do not exist or resolve outside `root`.

    `paths`: (how the user wrote it, the path). Checked before any training so a typo or a hostile listing is
    caught at once rather than mid-run; `resolve()` follows symlinks, so a link out of the tree counts as outside.
    """
    base = root.resolve()
    missing = [shown for shown, p in paths if not p.is_file()]
    outside = [] if allow_outside_root else [shown for shown, p in paths
                                             if p.is_file() and not p.resolve().is_relative_to(base)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} listed image(s) not found: {_names(missing)}")
    if outside:
        problems.append(f"{len(outside)} image(s) outside the data root {base}: {_names(outside)} (pass "
                        "allow_outside_root=true in data.kwargs if that is intended)")
    if problems:
        raise DatasetError("; ".join(problems))


def _names(items: List[str]) -> str:
    return ", ".join(items[:SHOWN]) + (f" and {len(items) - SHOWN} more" if len(items) > SHOWN else "")


@DATASETS.register("folder")
class FolderDataset(ReIDDataset):
    camera_base = 0  # camera ids are the numbers camera_regex captures from the file names: shown as they are
    name = "folder"

    def __init__(self, root: Union[str, Path], camera_regex: Optional[str] = None,
                 allow_outside_root: bool = False) -> None:
        root = Path(root)
        try:
            pattern = re.compile(camera_regex) if camera_regex else None
        except re.error as exc:
            raise DatasetError(f"camera_regex {camera_regex!r} is not a valid regular expression ({exc})") from None
        if pattern is not None and pattern.groups < 1:
            raise DatasetError(f"camera_regex {camera_regex!r} needs a group capturing the camera number, "
                               r"e.g. '_c(\d+)_'")
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
                        try:
                            camid = int(match.group(1))
                        except (TypeError, ValueError):
                            raise DatasetError(f"{path}: camera_regex {camera_regex!r} captured {match.group(1)!r}, "
                                               "not a camera number") from None
                    splits[split].append(Sample(str(path), pid, camid, {"identity": ident.name}))
        if not any(splits.values()):
            raise DatasetError(f"own-data folder {root} holds no images (expected {root}/train|query|gallery/"
                               f"<identity>/<image> with extensions {', '.join(sorted(IMAGE_EXTS))})")
        _check_paths(root, [(s.path, Path(s.path)) for v in splits.values() for s in v], allow_outside_root)
        super().__init__(splits["train"], splits["query"], splits["gallery"])


@DATASETS.register("csv")
class CSVDataset(ReIDDataset):
    camera_base = 0  # camera ids as the CSV lists them
    name = "csv"

    def __init__(self, root: Union[str, Path], file: Optional[str] = None, allow_outside_root: bool = False) -> None:
        path = Path(root) / file if file else Path(root)
        if path.is_dir():
            path = path / "dataset.csv"
        if not path.is_file():
            raise FileNotFoundError(f"CSV listing {path} not found")
        splits: Dict[str, List[Sample]] = {"train": [], "query": [], "gallery": []}
        cameras = set()
        listed: List[Tuple[str, Path]] = []
        seen: Dict[str, Tuple[int, str, int]] = {}  # image -> (line, split, pid) of its first row
        repeated: List[str] = []
        # utf-8-sig: Excel's "CSV UTF-8" starts with a byte-order mark, which would otherwise hide the `path` column
        with open(path, newline="", encoding="utf-8-sig") as handle:
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
                except (TypeError, ValueError):  # TypeError: a short row leaves the column None
                    raise DatasetError(f"{path}:{line}: pid and camid must be integers, got "
                                       f"{row['pid']!r}, {row['camid']!r}") from None
                cameras.add(camid)
                if not row["path"]:
                    raise DatasetError(f"{path}:{line}: empty path")
                image = Path(row["path"])
                full = image if image.is_absolute() else path.parent / image
                key = os.path.normpath(str(full))
                if key in seen:  # one image twice lifts the metrics (query found in the gallery) or mislabels it
                    first, split0, pid0 = seen[key]
                    what = ("in both query and gallery" if {split0, row["split"]} == {"query", "gallery"} else
                            f"under two ids ({pid0} and {pid})" if pid0 != pid else "twice")
                    repeated.append(f"{row['path']} {what} (lines {first} and {line})")
                    continue
                seen[key] = (line, row["split"], pid)
                listed.append((f"{path.name}:{line} {row['path']}", full))
                splits[row["split"]].append(Sample(str(full), pid, camid))
        if repeated:
            raise DatasetError(f"{path}: {len(repeated)} image(s) listed more than once: {_names(repeated)}; "
                               "expected each image in one row")
        if not listed:
            raise DatasetError(f"{path} lists no images (expected rows path,pid,camid,split after the header)")
        _check_paths(path.parent, listed, allow_outside_root)
        self.has_cameras = len(cameras) > 1
        super().__init__(splits["train"], splits["query"], splits["gallery"])
