"""tools/cache.py (reid-cache): a decoded-image cache folder listed, trimmed to a size, cleaned (issue 28 item 9);
only the cache's own files are touched."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

TOOL = Path(__file__).resolve().parents[2] / "tools" / "cache.py"


def _cache(tmp_path):
    from reid.data.cache import load_or_build

    import cv2

    folder = tmp_path / "cache"
    rng = np.random.default_rng(0)
    files = []
    for split in range(3):
        paths = []
        for i in range(4):
            path = tmp_path / f"s{split}_{i}.jpg"
            cv2.imwrite(str(path), rng.integers(0, 256, (64, 32, 3), dtype=np.uint8))
            paths.append(str(path))
        files.append(load_or_build(paths, 64, 32, folder)[0].file)
    for age, file in zip((300, 200, 100), files):  # s0 is the least recently used
        os.utime(file, (time.time() - age, time.time() - age))
    (folder / "notes.txt").write_text("the user's")
    return folder, files


def run(*args):
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], capture_output=True, text=True, timeout=120)


def test_list_trim_and_clean(tmp_path):
    folder, files = _cache(tmp_path)
    listed = run(folder)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines[:3]] == [f.stem for f in files]  # least recently used first
    assert lines[-1].startswith(f"{folder}: 3 entries, ") and "notes.txt" not in listed.stdout
    entry = sum(p.stat().st_size for p in folder.glob(f"{files[0].stem}*"))
    trimmed = run(folder, "--max-gb", 2.5 * entry / 1e9)
    assert trimmed.returncode == 0 and "removed 1 entry" in trimmed.stdout, trimmed.stderr
    assert not files[0].exists() and files[1].is_file() and files[2].is_file()
    cleaned = run(folder, "--clean")
    assert cleaned.returncode == 0 and "removed 2 entries" in cleaned.stdout and "0 left" in cleaned.stdout
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]


def test_missing_folder_or_bad_size_is_one_error(tmp_path):
    folder, files = _cache(tmp_path)
    for args, part in (((tmp_path / "nope",), "does not exist"), ((files[0],), "is a file"),
                       ((folder, "--max-gb", "nan"), "--max-gb nan: expected a finite number >= 0"),
                       ((folder, "--max-gb", "-1"), "expected a finite number >= 0")):
        proc = run(*args)
        assert proc.returncode == 2 and proc.stdout == ""
        assert proc.stderr.startswith("error: ") and part in proc.stderr and proc.stderr.count("\n") == 1
    assert all(f.is_file() for f in files)
