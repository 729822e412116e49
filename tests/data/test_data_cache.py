"""Decoded-image cache: build, reuse, invalidation, atomicity, bad files, read-only data roots."""
from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from reid.data import cache as cache_mod
from reid.data.cache import decode_split, default_cache_dir, load_or_build


def _write_images(folder: Path, n: int = 6, size=(40, 20)) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = folder / f"{i:04d}_c1s1_000001_00.jpg"
        cv2.imwrite(str(path), rng.integers(0, 256, (*size, 3), dtype=np.uint8))
        paths.append(str(path))
    return paths


def _count_decodes(monkeypatch) -> dict:
    calls = {"n": 0}
    real = cache_mod.decode_resized

    def counting(path, height, width):
        calls["n"] += 1
        return real(path, height, width)

    monkeypatch.setattr(cache_mod, "decode_resized", counting)
    return calls


def test_build_matches_per_file_resize_then_reuses_without_decoding(tmp_path, monkeypatch):
    paths = _write_images(tmp_path / "imgs")
    calls = _count_decodes(monkeypatch)
    decoded, bad = load_or_build(paths, 16, 8, tmp_path / "cache", threads=2)
    assert bad == [] and calls["n"] == len(paths)
    assert decoded.images.shape == (6, 16, 8, 3) and decoded.images.dtype == np.uint8
    for i, p in enumerate(paths):  # the same bytes as the albumentations pipeline's A.Resize (bilinear)
        ref = cv2.resize(cv2.cvtColor(cv2.imread(p), cv2.COLOR_BGR2RGB), (8, 16), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_array_equal(decoded.images[i], ref)
    again, _ = load_or_build(paths, 16, 8, tmp_path / "cache", threads=2)
    assert calls["n"] == len(paths)  # reused: nothing decoded
    assert again.file == decoded.file
    np.testing.assert_array_equal(again.batch([5, 0]).numpy(), decoded.images[[5, 0]])


def test_changed_file_or_size_gives_a_new_cache(tmp_path, monkeypatch):
    paths = _write_images(tmp_path / "imgs")
    first, _ = load_or_build(paths, 16, 8, tmp_path / "cache")
    cv2.imwrite(paths[2], np.full((40, 20, 3), 200, np.uint8))  # content, size and mtime change
    os.utime(paths[2], ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    calls = _count_decodes(monkeypatch)
    second, _ = load_or_build(paths, 16, 8, tmp_path / "cache")
    assert calls["n"] == len(paths) and second.file != first.file
    assert (second.images[2] >= 195).all()
    third, _ = load_or_build(paths, 32, 16, tmp_path / "cache")  # another resize: another entry
    assert third.file not in (first.file, second.file) and third.images.shape[1:3] == (32, 16)


def test_interrupted_build_is_never_used_and_its_temporary_file_goes(tmp_path, monkeypatch):
    paths = _write_images(tmp_path / "imgs")
    real = cache_mod.decode_resized

    def dying(path, height, width):
        if path == paths[3]:
            raise KeyboardInterrupt
        return real(path, height, width)

    monkeypatch.setattr(cache_mod, "decode_resized", dying)
    with pytest.raises(KeyboardInterrupt):
        load_or_build(paths, 16, 8, tmp_path / "cache", threads=1)
    assert list((tmp_path / "cache").glob("*.npy")) == []  # no complete-looking file
    # A temporary file left by a killed process (pid that no longer exists) is removed by the next build.
    key = cache_mod.cache_key(paths, 16, 8)
    stale = tmp_path / "cache" / f"{key}.npy.tmp-999999999-x"
    stale.write_bytes(b"partial")
    monkeypatch.setattr(cache_mod, "decode_resized", real)
    decoded, _ = load_or_build(paths, 16, 8, tmp_path / "cache")
    assert not stale.exists() and decoded.file.is_file()
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [f"{key}.bad.json", f"{key}.npy"]


def test_bad_files_are_reported_with_the_cache_and_again_on_reuse(tmp_path):
    paths = _write_images(tmp_path / "imgs")
    Path(paths[1]).write_bytes(b"")
    data = Path(paths[4]).read_bytes()
    Path(paths[4]).write_bytes(data[: len(data) // 2])  # truncated JPEG
    decoded, bad = load_or_build(paths, 16, 8, tmp_path / "cache")
    assert [i for i, _ in bad] == [1, 4]
    assert paths[1] in bad[0][1] and paths[4] in bad[1][1]
    assert not decoded.images[1].any()
    _, again = load_or_build(paths, 16, 8, tmp_path / "cache")
    assert again == bad


def test_budget_and_in_memory_modes(tmp_path):
    paths = _write_images(tmp_path / "imgs")
    decoded, bad = decode_split(paths, 16, 8, cache_dir=None, max_gb=1.0)
    assert decoded.file is None and len(decoded) == 6 and bad == []
    assert not (tmp_path / "imgs" / ".reid_cache").exists()
    too_big, _ = decode_split(paths, 16, 8, cache_dir=tmp_path / "cache", max_gb=6 * 16 * 8 * 3 / 1e9 * 0.5)
    assert too_big is None and not (tmp_path / "cache").exists()


def test_read_only_data_root_falls_back_to_the_run_folder(tmp_path):
    assert default_cache_dir(tmp_path / "data", tmp_path / "run") == tmp_path / "data" / ".reid_cache"
    # /proc refuses new folders even to root, as a read-only mount would.
    assert default_cache_dir("/proc/self", tmp_path / "run") == tmp_path / "run" / "cache"


# Issue 28 item 9: damaged entries, the folder's size cap; item 20: the content-hash option


@pytest.mark.parametrize("damage", ["truncated npy", "corrupt bad.json", "missing bad.json"])
def test_damaged_entry_is_named_removed_and_rebuilt(tmp_path, damage):
    paths = _write_images(tmp_path / "imgs")
    first, _ = load_or_build(paths, 16, 8, tmp_path / "cache")
    expected = np.array(first.images)
    array, bad_json = first.file, first.file.with_name(first.file.name.replace(".npy", ".bad.json"))
    del first
    if damage == "truncated npy":
        array.write_bytes(array.read_bytes()[:500])
    elif damage == "corrupt bad.json":
        bad_json.write_text('[[0, "x"')
    else:
        bad_json.unlink()
    notes = []
    again, bad = load_or_build(paths, 16, 8, tmp_path / "cache", log=notes.append)
    assert len(notes) == 1 and f"decoded-image cache entry {array} is damaged (" in notes[0]
    assert "removed, decoding the split again" in notes[0]
    np.testing.assert_array_equal(again.images, expected)
    assert bad == [] and bad_json.is_file()
    notes.clear()
    load_or_build(paths, 16, 8, tmp_path / "cache", log=notes.append)
    assert notes == []  # rebuilt for good: the next run just reuses it


def test_cache_folder_is_capped_by_evicting_the_least_recently_used_entry(tmp_path, monkeypatch):
    from reid.data import cache_folder

    splits = [_write_images(tmp_path / name, n=4) for name in ("a", "b", "c")]
    entry = cache_mod.cache_nbytes(4, 64, 32) + 1024
    cap = 2.5 * entry  # two entries fit, three do not
    folder = tmp_path / "cache"
    (folder).mkdir()
    (folder / "notes.txt").write_text("the user's file")  # not the cache's: never counted or removed
    files = {}
    for name, paths in zip("ab", splits):
        files[name] = load_or_build(paths, 64, 32, folder, max_bytes=cap)[0].file
    now = time.time()
    os.utime(files["a"], (now - 100, now - 100))
    os.utime(files["b"], (now - 50, now - 50))
    monkeypatch.setattr(cache_folder, "IN_USE", set())  # a later run: the earlier entries are not in use
    load_or_build(splits[0], 64, 32, folder, max_bytes=cap)  # a is used again: b becomes the oldest
    monkeypatch.setattr(cache_folder, "IN_USE", set())
    notes = []
    files["c"] = load_or_build(splits[2], 64, 32, folder, max_bytes=cap, log=notes.append)[0].file
    assert files["a"].is_file() and files["c"].is_file() and not files["b"].exists()
    assert not files["b"].with_name(files["b"].name.replace(".npy", ".bad.json")).exists()
    assert len(notes) == 1 and "removed 1 least recently used entry" in notes[0] and "data.cache_max_gb" in notes[0]
    assert cache_folder.total_bytes(folder) <= cap and (folder / "notes.txt").read_text() == "the user's file"


def test_cache_cap_never_evicts_this_runs_own_splits(tmp_path):
    splits = [_write_images(tmp_path / name, n=4) for name in ("train", "query")]
    cap = 1.5 * (cache_mod.cache_nbytes(4, 64, 32) + 1024)
    folder = tmp_path / "cache"
    train, _ = load_or_build(splits[0], 64, 32, folder, max_bytes=cap)
    notes = []
    query, _ = load_or_build(splits[1], 64, 32, folder, max_bytes=cap, log=notes.append, desc="decoding query")
    assert train.file.is_file() and query.file is None  # decoded in memory, the train entry kept
    assert len(notes) == 1 and notes[0].startswith("decoding query: not stored in ")
    assert sorted(p.suffix for p in folder.iterdir()) == [".json", ".npy"]


def test_split_larger_than_the_cap_still_falls_back_to_per_file_reading(tmp_path):
    paths = _write_images(tmp_path / "imgs")
    decoded, bad = decode_split(paths, 16, 8, cache_dir=tmp_path / "cache", max_gb=1e-9)
    assert decoded is None and bad == [] and not (tmp_path / "cache").exists()


def test_content_hash_sees_an_image_edited_with_size_and_mtime_kept(tmp_path):
    paths = _write_images(tmp_path / "imgs")
    st = os.stat(paths[1])
    stat_key = cache_mod.cache_key(paths, 16, 8)
    content_key = cache_mod.cache_key(paths, 16, 8, "content")
    data = bytearray(Path(paths[1]).read_bytes())
    data[-10] ^= 0xFF  # same length; in the compressed data, so a different picture
    Path(paths[1]).write_bytes(bytes(data))
    os.utime(paths[1], ns=(st.st_atime_ns, st.st_mtime_ns))
    assert cache_mod.cache_key(paths, 16, 8) == stat_key  # the documented limit of the default
    assert cache_mod.cache_key(paths, 16, 8, "content") != content_key
    with pytest.raises(ValueError, match=r"data.cache_hash: expected one of stat, content, got 'md5'"):
        cache_mod.cache_key(paths, 16, 8, "md5")
