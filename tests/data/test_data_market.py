"""Market-1501 adapter on a fixture in the exact release layout, plus attributes and the synthetic generator."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.io import savemat

from reid.data import DatasetError, build_dataset
from reid.data.datasets.base import DISTRACTOR_PID
from reid.data.datasets.market_attributes import ATTRIBUTES
from reid.data.synthetic import dataset_folder, generate

TRAIN = ["0002_c1s1_000451_03.jpg", "0002_c2s1_000301_01.jpg", "0007_c3s3_077419_03.jpg",
         "0007_c6s4_002427_02.jpg.jpg", "0010_c1s1_002301_03.jpg"]
TEST = ["-1_c1s1_000401_03.jpg", "0000_c1s1_000151_01.jpg", "0001_c1s1_001051_03.jpg", "0001_c2s1_000151_01.jpg",
        "0003_c1s1_000151_02.jpg", "0003_c3s1_000301_01.jpg", "0003_c1s1_000701_02.jpg"]
QUERY = ["0001_c1s1_001051_00.jpg", "0003_c1s1_000151_00.jpg"]
GT_BBOX = QUERY + ["0001_c1s1_001101_00.jpg", "0003_c1s1_000171_00.jpg", "0003_c1s1_000181_00.jpg",
                   "0003_c2s1_000181_00.jpg"]


def write_tree(root: Path, splits: dict) -> Path:
    base = root / "Market-1501-v15.09.15"
    img = np.full((128, 64, 3), 120, np.uint8)
    for split, names in splits.items():
        (base / split).mkdir(parents=True, exist_ok=True)
        for n in names:
            cv2.imwrite(str(base / split / n), img)
    (base / "bounding_box_test" / "Thumbs.db").write_bytes(b"\0")  # shipped in the release: ignored
    return base


@pytest.fixture()
def market(tmp_path):
    write_tree(tmp_path, {"bounding_box_train": TRAIN, "bounding_box_test": TEST, "query": QUERY,
                          "gt_bbox": GT_BBOX})
    return tmp_path


def test_counts_relabelling_junk_and_background(market):
    ds = build_dataset("market1501", str(market))
    assert len(ds.train) == 5 and ds.num_train_pids == 3
    assert sorted({s.pid for s in ds.train}) == [0, 1, 2]
    assert {s.extras["orig_pid"] for s in ds.train} == {2, 7, 10}
    assert any(s.path.endswith(".jpg.jpg") for s in ds.train)
    c = ds.counts()
    assert c["gallery"]["images"] == 7 and c["gallery"]["junk"] == 1 and c["gallery"]["background"] == 1
    assert c["query"]["images"] == 2
    cam = {Path(s.path).name: s.camid for s in ds.gallery}
    assert cam["0003_c3s1_000301_01.jpg"] == 2  # cameras from 0
    assert "train" in ds.summary() and "1 junk, 1 background" in ds.summary()


def test_release_folder_itself_is_accepted(market):
    ds = build_dataset("market1501", str(market / "Market-1501-v15.09.15"))
    assert len(ds.query) == 2


def test_multi_query_groups_same_id_and_camera(market):
    ds = build_dataset("market1501", str(market), multi_query=True)
    groups = {Path(q.path).name: sorted(Path(p).name for p in g) for q, g in zip(ds.query, ds.query_groups)}
    assert groups["0001_c1s1_001051_00.jpg"] == ["0001_c1s1_001051_00.jpg", "0001_c1s1_001101_00.jpg"]
    assert len(groups["0003_c1s1_000151_00.jpg"]) == 3  # the camera-2 box is not in the group


def test_distractors_and_extra_gallery(market):
    base = market / "Market-1501-v15.09.15"
    (base / "images").mkdir()
    for n in ("0000_c1s1_000001_00.jpg", "0000_c5s1_000002_00.jpg"):
        cv2.imwrite(str(base / "images" / n), np.zeros((8, 4, 3), np.uint8))
    ds = build_dataset("market1501", str(market), distractors=True)
    assert sum(s.pid == DISTRACTOR_PID for s in ds.gallery) == 2 and len(ds.gallery) == 9
    ds2 = build_dataset("market1501", str(market), extra_gallery="train")
    assert sum(s.pid == DISTRACTOR_PID for s in ds2.gallery) == 5
    with pytest.raises(FileNotFoundError, match="distractor folder"):
        build_dataset("market1501", str(market), distractors=str(market / "nope"))


def test_bad_file_name_is_named(market):
    bad = market / "Market-1501-v15.09.15" / "query" / "person1.jpg"
    cv2.imwrite(str(bad), np.zeros((8, 4, 3), np.uint8))
    with pytest.raises(DatasetError, match="person1.jpg.*pattern"):
        build_dataset("market1501", str(market))
    with pytest.warns(UserWarning, match="person1.jpg"):
        assert len(build_dataset("market1501", str(market), strict=False).query) == 2


def test_missing_dataset(tmp_path):
    with pytest.raises(FileNotFoundError, match="Market-1501-v15.09.15"):
        build_dataset("market1501", str(tmp_path))
    with pytest.raises(KeyError, match="Did you mean 'market1501'"):
        build_dataset("market1502", str(tmp_path))


def test_attributes_attached_per_identity(market):
    def part(ids):
        table = {name: np.array([2 if name != "age" else 3] * len(ids), dtype=np.uint8) for name in ATTRIBUTES}
        table["upred"] = np.array([1, 2, 1][: len(ids)], dtype=np.uint8)
        table["image_index"] = np.array(ids, dtype=object)
        return table

    savemat(market / "Market-1501-v15.09.15" / "market_attribute.mat",
            {"market_attribute": {"train": part(["0002", "0007", "0010"]), "test": part(["0001", "0003"])}})
    ds = build_dataset("market1501", str(market), attributes=True)
    by_pid = {s.extras["orig_pid"]: s.extras["attributes"] for s in ds.train}
    assert len(by_pid[2]) == 27 and by_pid[2][ATTRIBUTES.index("upred")] == 0
    assert by_pid[7][ATTRIBUTES.index("upred")] == 1
    assert by_pid[2][ATTRIBUTES.index("age")] == pytest.approx(2 / 3)
    assert all("attributes" in q.extras for q in ds.query)


def test_synthetic_generation_is_deterministic_and_complete(tmp_path):
    a = generate(tmp_path / "a", num_ids=8, num_cams=3, seed=5, images_per_id_cam=2)
    b = generate(tmp_path / "b", num_ids=8, num_cams=3, seed=5, images_per_id_cam=2)
    c = generate(tmp_path / "c", num_ids=8, num_cams=3, seed=6, images_per_id_cam=2)
    files = sorted(p.relative_to(a) for p in a.rglob("*.jpg"))
    assert files == sorted(p.relative_to(b) for p in b.rglob("*.jpg"))
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    assert any((a / f).read_bytes() != (c / f).read_bytes() for f in files if (c / f).exists()) or \
        files != sorted(p.relative_to(c) for p in c.rglob("*.jpg"))
    ds = build_dataset("market1501", str(a), multi_query=True)
    assert ds.num_train_pids == 4 and ds.counts()["gallery"]["junk"] > 0 and ds.counts()["gallery"]["background"] > 0
    assert all(len(g) == 3 for g in ds.query_groups)
    train_ids = {s.extras["orig_pid"] for s in ds.train}
    assert train_ids.isdisjoint({s.pid for s in ds.query})


def test_synthetic_interrupted_generation_is_not_taken_as_complete(tmp_path):
    folder = dataset_folder(tmp_path, 8, 3, 0)
    (folder / "query").mkdir(parents=True)  # a leftover without the completion marker
    out = generate(tmp_path, num_ids=8, num_cams=3, seed=0, images_per_id_cam=2)
    assert out == folder and (folder / ".complete").is_file() and any((folder / "query").iterdir())
    ds = build_dataset("synthetic", str(tmp_path), num_ids=8, num_cams=3, images_per_id_cam=2)
    # the regenerated split in full: one query per camera that saw each of the 4 test ids (ids 5-8)
    assert len(ds.query) == 10 and sorted({s.pid for s in ds.query}) == [5, 6, 7, 8]
    assert ds.counts()["train"] == {"images": 20, "ids": 4, "cameras": 3}


def test_empty_split_and_missing_subfolder(market):
    for f in (market / "Market-1501-v15.09.15" / "query").iterdir():
        f.unlink()
    with pytest.raises(DatasetError, match="query holds no images.*empty split"):
        build_dataset("market1501", str(market))
    (market / "Market-1501-v15.09.15" / "query").rmdir()
    with pytest.raises(FileNotFoundError, match="missing folder .*query.*datasets/README.md"):
        build_dataset("market1501", str(market))
