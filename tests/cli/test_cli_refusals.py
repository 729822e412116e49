"""Issue 16 items 9 and 11 (and siblings): tools/evaluate.py, tools/dataset_summary.py and reid-demo --topk
refuse unusable input in one line with exit code 2, leaving every file as it was. (reid-demo --topk < 1 is
refused by reid.demo, tested with the demo.)"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


def run(script, *args):
    return subprocess.run([sys.executable, str(REPO / "tools" / script), *map(str, args)], capture_output=True,
                          text=True, timeout=300, env={"NO_ALBUMENTATIONS_UPDATE": "1", "PATH": "/usr/bin:/bin"})


def tree_digest(folder: Path):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture()
def npz(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "q.npz", features=rng.normal(size=(6, 4)).astype(np.float32), pids=np.arange(6) % 3 + 1,
             camids=np.zeros(6, int))
    np.savez(tmp_path / "g.npz", features=rng.normal(size=(12, 4)).astype(np.float32), pids=np.arange(12) % 3 + 1,
             camids=np.ones(12, int))
    return tmp_path


def refused(proc, *parts):
    """Exit code 2, one stderr line starting with 'error:' holding every part; nothing on stdout."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for part in parts:
        assert part in lines[0], (part, lines[0])
    return lines[0]


def evaluate_with(tmp_path, query_name, **query):
    np.savez(tmp_path / query_name, **query)
    return run("evaluate.py", "--query", tmp_path / query_name, "--gallery", tmp_path / "g.npz")


def test_fractional_ids_refused_not_truncated(npz):
    q = dict(np.load(npz / "q.npz"))
    q["pids"] = np.array([1, 2, 2.5, 1, 2, 3])
    refused(evaluate_with(npz, "frac.npz", **q), "frac.npz", "'pids' must hold integers", "2.5 at index 2")
    q["pids"] = np.array([1.0, 2, 3, 1, 2, 3])  # integral floats are ids written as float: accepted
    assert evaluate_with(npz, "whole.npz", **q).returncode == 0


def test_string_ids_name_file_and_array(npz):
    q = dict(np.load(npz / "q.npz"))
    q["camids"] = np.array(["a", "b", "c", "d", "e", "f"])
    refused(evaluate_with(npz, "str.npz", **q), "str.npz", "'camids' must hold integers", "dtype <U1", "'a'")


def test_ids_of_wrong_length(npz):
    q = dict(np.load(npz / "q.npz"))
    q["pids"] = np.arange(5)
    refused(evaluate_with(npz, "short.npz", **q), "short.npz", "'pids' must be a 1-D array of 6 ids", "(5,)")


def test_plain_npy_and_object_npz_refused(npz):
    np.save(npz / "plain.npy", np.zeros((3, 4), np.float32))
    refused(run("evaluate.py", "--query", npz / "plain.npy", "--gallery", npz / "g.npz"),
            "plain.npy is a plain .npy array; expected an .npz holding 'features'")
    np.savez(npz / "obj.npz", features=np.array([np.zeros(4), "x"], dtype=object), pids=np.array([1, 2]))
    refused(run("evaluate.py", "--query", npz / "obj.npz", "--gallery", npz / "g.npz"),
            "obj.npz: array 'features' cannot be loaded", "allow_pickle=False")
    (npz / "broken.npz").write_bytes(b"PK\x03\x04 not really a zip")
    refused(run("evaluate.py", "--query", npz / "broken.npz", "--gallery", npz / "g.npz"), "cannot read",
            "broken.npz")
    refused(run("evaluate.py", "--query", npz / "absent.npz", "--gallery", npz / "g.npz"),
            "absent.npz: file not found")


def test_nan_features_refused(npz):
    q = dict(np.load(npz / "q.npz"))
    q["features"][1, 2] = np.nan
    refused(evaluate_with(npz, "nan.npz", **q), "nan.npz: 'features' holds 1 NaN or infinite value(s)")


def test_feature_size_mismatch_names_both_files(npz):
    np.savez(npz / "d.npz", features=np.zeros((3, 8), np.float32))
    refused(run("evaluate.py", "--query", npz / "q.npz", "--gallery", npz / "g.npz", "--distractors", npz / "d.npz"),
            "d.npz features are 8-d but", "g.npz features are 4-d")
    np.savez(npz / "q8.npz", features=np.zeros((6, 8), np.float32), pids=np.arange(6))
    refused(run("evaluate.py", "--query", npz / "q8.npz", "--gallery", npz / "g.npz"), "q8.npz features are 8-d",
            "g.npz features are 4-d")


def test_json_to_folder_refused_without_stray_files(npz):
    out = npz / "out"
    out.mkdir()
    before = tree_digest(npz)
    refused(run("evaluate.py", "--query", npz / "q.npz", "--gallery", npz / "g.npz", "--json", out),
            f"--json {out} is a folder")
    assert tree_digest(npz) == before  # no .results*.json left next to it or inside
    assert not list(npz.rglob(".results*"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into read-only folders")
def test_json_unwritable_refused_before_evaluating(npz):
    locked = npz / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        refused(run("evaluate.py", "--query", npz / "q.npz", "--gallery", npz / "g.npz", "--json",
                    locked / "r.json"), "cannot write there")
    finally:
        locked.chmod(0o700)


def test_json_under_a_file_refused(npz):
    refused(run("evaluate.py", "--query", npz / "q.npz", "--gallery", npz / "g.npz", "--json",
                npz / "q.npz" / "r.json"), "cannot write there", "is not a writable folder")
    assert np.load(npz / "q.npz")["features"].shape == (6, 4)  # the input file was not touched


def test_rerank_parameters_checked(npz):
    proc = run("evaluate.py", "--query", npz / "q.npz", "--gallery", npz / "g.npz", "--rerank", "--k1", "0")
    assert proc.returncode == 2 and "argument --k1: expected a number >= 1, got 0" in proc.stderr
    proc = run("evaluate.py", "--query", npz / "q.npz", "--gallery", npz / "g.npz", "--lambda", "1.5")
    assert proc.returncode == 2 and "argument --lambda: expected a number in [0, 1], got 1.5" in proc.stderr


def test_valid_input_still_evaluates(npz):
    proc = run("evaluate.py", "--query", npz / "q.npz", "--gallery", npz / "g.npz", "--json", npz / "new" / "r.json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((npz / "new" / "r.json").read_text())["num_queries"] == 6


def test_dataset_summary_json_folder_and_bad_options(tiny_market, tmp_path):
    before = tree_digest(tiny_market)
    refused(run("dataset_summary.py", "--dataset", "market1501", "--root", tiny_market, "--json", tmp_path),
            f"--json {tmp_path} is a folder")
    refused(run("dataset_summary.py", "--dataset", "market1501", "--root", tiny_market, "colour=red"),
            "dataset 'market1501': unknown option(s) colour; valid: distractors")
    refused(run("dataset_summary.py", "--dataset", "market1501", "--root", tiny_market, "strict"),
            "option 'strict' must look like key=value")
    refused(run("dataset_summary.py", "--dataset", "market15O1", "--root", tiny_market),
            "unknown dataset 'market15O1'", "Did you mean 'market1501'")
    assert tree_digest(tiny_market) == before
    assert list(tmp_path.iterdir()) == []


def test_dataset_summary_check_images(tiny_market, tmp_path):
    ok = run("dataset_summary.py", "--dataset", "market1501", "--root", tiny_market, "--check-images")
    assert ok.returncode == 0 and "complete (every file decoded, JPEGs in strict mode)" in ok.stdout, ok.stderr
    import shutil

    copy = tmp_path / "market"
    shutil.copytree(tiny_market, copy)
    victim = sorted((copy / "query").glob("*.jpg"))[0]
    victim.write_bytes(victim.read_bytes()[:100])
    line = refused(run("dataset_summary.py", "--dataset", "market1501", "--root", copy, "--check-images"),
                   "1 unreadable image(s)", f"{victim} (truncated JPEG")
    assert line.count("(truncated") == 1
