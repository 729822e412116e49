"""Issue 16 items 7, 8, 9 (Market camera c0) and the own-data part of 10: dataset adapters refuse incomplete or
unsafe listings with one error naming the files, keep CUHK01 splits stable, and never modify the data."""
from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from reid.data.datasets import DatasetError, build_dataset
from reid.data.datasets.cuhk01 import _test_ids


def tree_digest(folder: Path):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def write_png(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.zeros((8, 4, 3), np.uint8))


def write_cuhk01(root: Path, ids: int = 30, skip=()) -> Path:
    for pid in range(1, ids + 1):
        for i in range(1, 5):
            name = f"{pid:04d}{i:03d}.png"
            if name not in skip and pid not in skip:
                write_png(root / "campus" / name)
    return root


# ---------------------------------------------------------------- item 7: CUHK01
def test_cuhk01_missing_identity_refused_with_its_names(tmp_path):
    write_cuhk01(tmp_path, skip=(7,))
    before = tree_digest(tmp_path)
    with pytest.raises(DatasetError) as info:
        build_dataset("cuhk01", str(tmp_path), num_test_ids=10)
    message = str(info.value)
    assert "lacks 4 image(s) of ids 1..30: 0007001.png, 0007002.png, 0007003.png, 0007004.png" in message
    assert "data.kwargs.allow_missing=true" in message
    assert tree_digest(tmp_path) == before


def test_cuhk01_missing_image_refused_and_counted(tmp_path):
    write_cuhk01(tmp_path, skip=("0003004.png",) + tuple(f"{p:04d}001.png" for p in range(10, 22)))
    with pytest.raises(DatasetError, match=r"lacks 13 image\(s\) .*0003004\.png, 0010001\.png.* and 3 more"):
        build_dataset("cuhk01", str(tmp_path), num_test_ids=10)


def test_cuhk01_split_stable_when_an_identity_is_missing(tmp_path):
    full = build_dataset("cuhk01", str(write_cuhk01(tmp_path / "full")), num_test_ids=10, split_id=3)
    test_ids = sorted({s.pid for s in full.query})
    victim = test_ids[0]
    partial_root = write_cuhk01(tmp_path / "partial", skip=(victim,))
    with pytest.warns(UserWarning, match=f"lacks 4 image.*{victim:04d}001.png.*allow_missing=true"):
        partial = build_dataset("cuhk01", str(partial_root), num_test_ids=10, split_id=3, allow_missing=True)
    partial_ids = sorted({s.pid for s in partial.query})
    # every other test identity stays; exactly one replacement comes in for the missing one
    assert set(test_ids) - {victim} <= set(partial_ids)
    assert len(partial_ids) == 10 and victim not in partial_ids
    # a train identity missing leaves the test split untouched
    train_victim = next(p for p in range(1, 31) if p not in test_ids)
    with pytest.warns(UserWarning):
        other = build_dataset("cuhk01", str(write_cuhk01(tmp_path / "t", skip=(train_victim,))), num_test_ids=10,
                              split_id=3, allow_missing=True)
    assert sorted({s.pid for s in other.query}) == test_ids


def test_cuhk01_full_release_split_is_the_published_permutation():
    ids = list(range(1, 972))
    rng = np.random.default_rng([0, 5])
    expected = set(np.asarray(ids)[rng.permutation(971)[:486]].tolist())
    assert _test_ids(ids, 486, 0, 5) == expected


def test_cuhk01_complete_folder_builds_silently(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = build_dataset("cuhk01", str(write_cuhk01(tmp_path)), num_test_ids=10)
    assert len(ds.query) == len(ds.gallery) == 20 and ds.num_train_pids == 20


# ---------------------------------------------------------------- item 8: own data outside the root
def write_csv(root: Path, rows) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset.csv").write_text("path,pid,camid,split\n" + "".join(f"{r}\n" for r in rows))
    return root


def test_csv_path_escaping_the_root_refused(tmp_path):
    root = tmp_path / "data"
    write_png(root / "a.png")
    write_png(root / "b.png")  # a.png again in the gallery would be a duplicate row, refused on its own
    write_png(tmp_path / "secret.png")
    write_csv(root, ["a.png,1,0,train", "../secret.png,1,1,query", "b.png,1,1,gallery"])
    before = tree_digest(tmp_path)
    with pytest.raises(DatasetError) as info:
        build_dataset("csv", str(root))
    message = str(info.value)
    assert "1 image(s) outside the data root" in message and "dataset.csv:3 ../secret.png" in message
    assert "allow_outside_root=true" in message
    assert tree_digest(tmp_path) == before
    ds = build_dataset("csv", str(root), allow_outside_root=True)
    assert Path(ds.query[0].path).resolve() == (tmp_path / "secret.png").resolve()


def test_csv_nonexistent_paths_refused_up_front_all_named(tmp_path):
    root = tmp_path / "data"
    write_png(root / "a.png")
    write_csv(root, ["a.png,1,0,train", "gone.png,1,1,query", "../../../../etc/passwd-not-here,2,0,gallery"])
    with pytest.raises(DatasetError, match=r"2 listed image\(s\) not found: dataset\.csv:3 gone\.png, "
                                           r"dataset\.csv:4 \.\./\.\./\.\./\.\./etc/passwd-not-here"):
        build_dataset("csv", str(root))


def test_csv_absolute_path_outside_refused(tmp_path):
    root = tmp_path / "data"
    write_png(root / "a.png")
    write_csv(root, ["a.png,1,0,train", f"{os.path.realpath('/etc/hostname')},1,1,query"])
    if not Path("/etc/hostname").is_file():
        pytest.skip("needs a system file")
    with pytest.raises(DatasetError, match="outside the data root"):
        build_dataset("csv", str(root))


def test_csv_short_row_is_a_dataset_error(tmp_path):
    root = tmp_path / "data"
    write_png(root / "a.png")
    write_csv(root, ["a.png,1"])
    with pytest.raises(DatasetError, match=r"dataset\.csv:2: split None"):
        build_dataset("csv", str(root))


def make_folder_set(root: Path) -> Path:
    for split in ("train", "query", "gallery"):
        write_png(root / split / "alice" / "c1_0.png")
    return root


def test_folder_symlink_out_of_root_refused(tmp_path):
    root = make_folder_set(tmp_path / "own")
    write_png(tmp_path / "private" / "x.png")
    (root / "train" / "alice" / "link.png").symlink_to(tmp_path / "private" / "x.png")
    before = tree_digest(tmp_path / "private")
    with pytest.raises(DatasetError, match=r"1 image\(s\) outside the data root .*link\.png"):
        build_dataset("folder", str(root))
    assert tree_digest(tmp_path / "private") == before
    assert len(build_dataset("folder", str(root), allow_outside_root=True).train) == 2


def test_folder_broken_symlink_refused(tmp_path):
    root = make_folder_set(tmp_path / "own")
    (root / "query" / "alice" / "dangling.png").symlink_to(tmp_path / "nowhere.png")
    with pytest.raises(DatasetError, match=r"1 listed image\(s\) not found: .*dangling\.png"):
        build_dataset("folder", str(root))


def test_folder_symlink_inside_root_accepted(tmp_path):
    root = make_folder_set(tmp_path / "own")
    (root / "gallery" / "alice" / "again.png").symlink_to(root / "train" / "alice" / "c1_0.png")
    assert len(build_dataset("folder", str(root)).gallery) == 2


def test_empty_own_data_folder_refused(tmp_path):
    for split in ("train", "query", "gallery"):
        (tmp_path / split / "bob").mkdir(parents=True)
    with pytest.raises(DatasetError, match=f"own-data folder {tmp_path} holds no images"):
        build_dataset("folder", str(tmp_path))


def test_folder_camera_regex_errors(tmp_path):
    root = make_folder_set(tmp_path / "own")
    with pytest.raises(DatasetError, match=r"camera_regex '\(' is not a valid regular expression"):
        build_dataset("folder", str(root), camera_regex="(")
    with pytest.raises(DatasetError, match="needs a group capturing the camera number"):
        build_dataset("folder", str(root), camera_regex="c1")
    with pytest.raises(DatasetError, match=r"captured 'c', not a camera number"):
        build_dataset("folder", str(root), camera_regex="(c)1")
    assert {s.camid for s in build_dataset("folder", str(root), camera_regex=r"c(\d)").train} == {1}


# ---------------------------------------------------------------- item 9: Market camera c0
def test_market_camera_c0_refused(tiny_market, tmp_path):
    import shutil

    root = tmp_path / "m"
    shutil.copytree(tiny_market, root)
    source = sorted((root / "query").glob("*.jpg"))[0]
    pid, rest = source.name.split("_c", 1)
    bad = source.with_name(f"{pid}_c0{rest[1:]}")  # 0009_c1s1_... -> 0009_c0s1_...
    shutil.copy(source, bad)
    with pytest.raises(DatasetError, match=f"{bad.name}: camera c0 in the file name; .*numbered from c1"):
        build_dataset("market1501", str(root))
    with pytest.warns(UserWarning, match="camera c0"):
        lenient = build_dataset("market1501", str(root), strict=False)
    assert bad.name not in {Path(s.path).name for s in lenient.query}
    assert min(s.camid for s in lenient.query) >= 0


def test_unknown_dataset_option_names_valid_ones(tmp_path):
    with pytest.raises(DatasetError, match=r"dataset 'cuhk01': unknown option\(s\) split; valid: num_test_ids, "
                                           r"split_id, seed, allow_missing"):
        build_dataset("cuhk01", str(tmp_path), split=1)
