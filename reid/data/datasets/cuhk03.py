"""CUHK03 (Li et al., CVPR 2014) from the released `cuhk-03.mat` (MATLAB v7.3 = HDF5, read with h5py).

Images are extracted once into a cache folder next to the .mat (`images_labeled/` or `images_detected/`),
named `<pair>_<id:03d>_<view>_<img:02d>.png` as in the new-protocol file lists; the extraction writes into a
temporary folder renamed into place when complete, so an interrupted extraction is never taken as done.
Protocols: "classic" (20 splits of 100 test ids from `testsets`, the other 1,367 ids train; single-shot
evaluation) and "new" (767 / 700 ids from `cuhk03_new_protocol_config_{labeled,detected}.mat`; Market-style).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple, Union

import cv2
import numpy as np

from ..atomic import building_folder, is_complete
from . import DATASETS
from .base import DatasetError, ReIDDataset, Sample

MAT_NAME = "cuhk-03.mat"


def find_root(root: Union[str, Path]) -> Path:
    root = Path(root)
    for c in (root, root / "cuhk03_release", root / "cuhk03" / "cuhk03_release", root / "cuhk03"):
        if (c / MAT_NAME).is_file():
            return c
    raise FileNotFoundError(f"{MAT_NAME} not found under {root} (expected {root / 'cuhk03_release' / MAT_NAME})")


def extract_images(mat_path: Path, labeled: bool) -> Path:
    """Write every image of the chosen set as PNG once; returns the cache folder."""
    kind = "labeled" if labeled else "detected"
    final = mat_path.parent / f"images_{kind}"
    if is_complete(final):
        return final
    import h5py

    with building_folder(final) as tmp, h5py.File(mat_path, "r") as mat:
        if kind not in mat:
            raise DatasetError(f"{mat_path}: key '{kind}' missing (keys: {', '.join(mat.keys())})")
        pairs = mat[kind][0]
        for pair_index, pair_ref in enumerate(pairs, 1):
            cells = mat[pair_ref][:]  # (10, num_ids) references
            for pid in range(cells.shape[1]):
                for img_index in range(10):
                    data = mat[cells[img_index, pid]][:]
                    if data.size == 0 or data.ndim < 3:
                        continue  # missing images are stored as empty cells
                    rgb = data.transpose(2, 1, 0)
                    view = 1 if img_index < 5 else 2
                    name = f"{pair_index}_{pid + 1:03d}_{view}_{img_index + 1:02d}.png"
                    cv2.imwrite(str(tmp / name), cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    return final


def _parse(name: str) -> Tuple[int, int, int]:
    """(pair, id within pair, camera 0/1) from `1_001_1_01.png`."""
    try:
        pair, pid, view, _ = Path(name).stem.split("_")
        return int(pair), int(pid), int(view) - 1
    except ValueError:
        raise DatasetError(f"CUHK03 image name {name!r} does not follow <pair>_<id>_<view>_<img>.png") from None


@DATASETS.register("cuhk03")
class CUHK03(ReIDDataset):
    name = "cuhk03"

    def __init__(self, root: Union[str, Path] = "datasets", labeled: bool = True, protocol: str = "new",
                 split_id: int = 0) -> None:
        base = find_root(root)
        self.labeled, self.protocol, self.split_id = labeled, protocol, split_id
        folder = extract_images(base / MAT_NAME, labeled)
        files = sorted(p.name for p in folder.glob("*.png"))
        if protocol == "new":
            train, query, gallery = self._new_protocol(base, folder, files)
        elif protocol == "classic":
            train, query, gallery = self._classic(base / MAT_NAME, folder, files)
        else:
            raise DatasetError(f"cuhk03 protocol: expected 'new' or 'classic', got {protocol!r}")
        super().__init__(train, query, gallery)

    def _classic(self, mat_path: Path, folder: Path, files: List[str]):
        import h5py

        with h5py.File(mat_path, "r") as mat:
            if "testsets" not in mat:
                raise DatasetError(f"{mat_path}: key 'testsets' missing (keys: {', '.join(mat.keys())}); the classic "
                                   "protocol needs it")
            sets = mat["testsets"][0]
            if not 0 <= self.split_id < len(sets):
                raise DatasetError(f"cuhk03 split_id {self.split_id} out of range 0..{len(sets) - 1}")
            test = mat[sets[self.split_id]][:].T.astype(int)  # (100, 2): pair, id (1-based)
        test_ids = {(int(p), int(i)) for p, i in test}
        ids: Dict[Tuple[int, int], int] = {}
        train, query, gallery = [], [], []
        for name in files:
            pair, pid, cam = _parse(name)
            key = (pair, pid)
            label = ids.setdefault(key, len(ids) + 1)
            sample = Sample(str(folder / name), label, cam, {"pair": pair})
            if key in test_ids:
                (query if cam == 0 else gallery).append(sample)
            else:
                train.append(sample)
        return train, query, gallery

    def _new_protocol(self, base: Path, folder: Path, files: List[str]):
        from scipy.io import loadmat

        kind = "labeled" if self.labeled else "detected"
        path = base / f"cuhk03_new_protocol_config_{kind}.mat"
        if not path.is_file():
            raise FileNotFoundError(f"{path} missing: the new protocol needs the split file from "
                                    "github.com/zhunzhong07/person-re-ranking (see datasets/README.md)")
        cfg = loadmat(path)
        for key in ("filelist", "labels", "camId", "train_idx", "query_idx", "gallery_idx"):
            if key not in cfg:
                raise DatasetError(f"{path}: key '{key}' missing")
        names = [str(np.asarray(x).ravel()[0]) for x in cfg["filelist"].ravel()]
        labels = cfg["labels"].ravel().astype(int)
        cams = cfg["camId"].ravel().astype(int) - 1
        available = set(files)

        def take(key: str) -> List[Sample]:
            out = []
            for i in cfg[key].ravel().astype(int) - 1:
                if names[i] not in available:
                    raise DatasetError(f"{path}: lists {names[i]}, which is not in the extracted images {folder}")
                out.append(Sample(str(folder / names[i]), int(labels[i]), int(cams[i])))
            return out

        return take("train_idx"), take("query_idx"), take("gallery_idx")
