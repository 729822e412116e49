"""CUHK03 (HDF5 .mat, cached extraction, classic and new protocols) and CUHK01 on fixtures in the real formats."""
from __future__ import annotations

from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
from scipy.io import savemat

from reid.data import DatasetError, build_dataset
from reid.data.datasets import cuhk03

IDS_PER_PAIR = [3, 2]


def write_cuhk03(root: Path) -> Path:
    """A cuhk-03.mat as MATLAB v7.3 writes it: cells of object references, images stored as (3, W, H)."""
    base = root / "cuhk03_release"
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)
    with h5py.File(base / "cuhk-03.mat", "w") as f:
        refs = f.create_group("#refs#")
        counter = [0]

        def store(data):
            counter[0] += 1
            return refs.create_dataset(str(counter[0]), data=data).ref

        for kind in ("labeled", "detected"):
            pair_refs = []
            for n_ids in IDS_PER_PAIR:
                cells = np.empty((10, n_ids), dtype=h5py.ref_dtype)
                for pid in range(n_ids):
                    for img in range(10):
                        if img in (4, 9) and pid == 0:  # missing images are empty cells
                            cells[img, pid] = store(np.zeros(2, dtype=np.uint64))
                        else:
                            cells[img, pid] = store(rng.integers(0, 255, (3, 10, 20), dtype=np.uint8))
                pair_refs.append(store(cells))
            f.create_dataset(kind, data=np.array([pair_refs], dtype=h5py.ref_dtype))
        tests = [store(np.array([[1, 2], [1, 1]], dtype=np.float64)),  # (2, 100)-like: pair row, id row
                 store(np.array([[1, 1, 2], [3, 2, 1]], dtype=np.float64))]
        f.create_dataset("testsets", data=np.array([tests], dtype=h5py.ref_dtype))
    return base


def test_classic_protocol(tmp_path):
    write_cuhk03(tmp_path)
    ds = build_dataset("cuhk03", str(tmp_path), labeled=True, protocol="classic", split_id=0)
    assert (tmp_path / "cuhk03_release" / "images_labeled" / ".complete").is_file()
    # split 0 tests (pair 1, id 1) and (pair 2, id 1): 2 ids; train: 3 ids
    assert ds.num_train_pids == 3
    assert {s.camid for s in ds.query} == {0} and {s.camid for s in ds.gallery} == {1}
    assert len(ds.query) == 8 and len(ds.gallery) == 8  # id 1 of each pair lacks one image per camera
    img = cv2.imread(ds.query[0].path)
    assert img.shape == (20, 10, 3)  # (3, W, H) transposed to (H, W, 3)
    ds1 = build_dataset("cuhk03", str(tmp_path), protocol="classic", split_id=1)
    assert ds1.num_train_pids == 2
    with pytest.raises(DatasetError, match="split_id 5 out of range"):
        build_dataset("cuhk03", str(tmp_path), protocol="classic", split_id=5)


def test_extraction_is_idempotent_and_atomic(tmp_path, monkeypatch):
    base = write_cuhk03(tmp_path)
    leftover = base / "images_detected"
    leftover.mkdir()  # an interrupted earlier extraction: no marker
    (leftover / "1_001_1_01.png").write_bytes(b"partial")
    folder = cuhk03.extract_images(base / "cuhk-03.mat", labeled=False)
    assert cv2.imread(str(folder / "1_001_1_01.png")) is not None
    stamp = (folder / "1_001_1_01.png").stat().st_mtime_ns

    def boom(*a, **k):
        raise AssertionError("must not re-extract")

    monkeypatch.setattr(cuhk03, "cv2", type("X", (), {"imwrite": boom}))
    assert cuhk03.extract_images(base / "cuhk-03.mat", labeled=False) == folder
    assert (folder / "1_001_1_01.png").stat().st_mtime_ns == stamp


def test_new_protocol(tmp_path):
    base = write_cuhk03(tmp_path)
    names = ["1_001_1_01.png", "1_001_2_06.png", "1_002_1_01.png", "1_002_2_07.png", "2_001_1_02.png",
             "2_001_2_06.png"]
    filelist = np.empty((len(names), 1), dtype=object)
    for i, n in enumerate(names):
        filelist[i, 0] = n
    savemat(base / "cuhk03_new_protocol_config_labeled.mat", {
        "filelist": filelist, "labels": np.array([[1], [1], [2], [2], [3], [3]]),
        "camId": np.array([[1], [2], [1], [2], [1], [2]]), "train_idx": np.array([[1], [2], [3], [4]]),
        "query_idx": np.array([[5]]), "gallery_idx": np.array([[6]])})
    ds = build_dataset("cuhk03", str(tmp_path), labeled=True, protocol="new")
    assert len(ds.train) == 4 and ds.num_train_pids == 2 and len(ds.query) == 1 and ds.gallery[0].camid == 1
    with pytest.raises(FileNotFoundError, match="cuhk03_new_protocol_config_detected.mat"):
        build_dataset("cuhk03", str(tmp_path), labeled=False, protocol="new")


def test_missing_mat(tmp_path):
    with pytest.raises(FileNotFoundError, match="cuhk-03.mat"):
        build_dataset("cuhk03", str(tmp_path))


def write_cuhk01(root: Path, ids: int = 20) -> None:
    folder = root / "campus"
    folder.mkdir(parents=True)
    for pid in range(1, ids + 1):
        for i in range(1, 5):
            cv2.imwrite(str(folder / f"{pid:04d}{i:03d}.png"), np.zeros((16, 6, 3), np.uint8))


def test_cuhk01_protocols_and_seeded_splits(tmp_path):
    write_cuhk01(tmp_path)
    a = build_dataset("cuhk01", str(tmp_path), num_test_ids=5, split_id=0)
    b = build_dataset("cuhk01", str(tmp_path), num_test_ids=5, split_id=0)
    c = build_dataset("cuhk01", str(tmp_path), num_test_ids=5, split_id=1)
    assert a.num_train_pids == 15 and len(a.query) == 10 and len(a.gallery) == 10
    assert {s.camid for s in a.query} == {0} and {s.camid for s in a.gallery} == {1}
    assert [s.path for s in a.query] == [s.path for s in b.query]
    assert {s.pid for s in a.query} != {s.pid for s in c.query}
    with pytest.raises(DatasetError, match="num_test_ids"):
        build_dataset("cuhk01", str(tmp_path), num_test_ids=20)
    (tmp_path / "campus" / "bad.png").write_bytes(b"")
    with pytest.raises(DatasetError, match="bad.png"):
        build_dataset("cuhk01", str(tmp_path))


def test_mat_missing_keys(tmp_path):
    base = tmp_path / "cuhk03_release"
    base.mkdir(parents=True)
    with h5py.File(base / "cuhk-03.mat", "w") as f:
        f.create_dataset("other", data=np.zeros(2))
    with pytest.raises(DatasetError, match="key 'labeled' missing"):
        build_dataset("cuhk03", str(tmp_path), protocol="classic")
    base2 = write_cuhk03(tmp_path / "second")
    with h5py.File(base2 / "cuhk-03.mat", "a") as f:
        del f["testsets"]
    with pytest.raises(DatasetError, match="key 'testsets' missing"):
        build_dataset("cuhk03", str(tmp_path / "second"), protocol="classic")
