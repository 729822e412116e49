"""tools/evaluate.py and tools/dataset_summary.py end to end."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reid.evaluation import evaluate

REPO = Path(__file__).resolve().parents[1]


def run(script, *args):
    return subprocess.run([sys.executable, str(REPO / "tools" / script), *map(str, args)], capture_output=True,
                          text=True, timeout=300, env={"NO_ALBUMENTATIONS_UPDATE": "1", "PATH": "/usr/bin:/bin"})


def test_evaluate_cli_matches_the_function(tmp_path):
    rng = np.random.default_rng(0)
    q = dict(features=rng.normal(size=(10, 4)).astype(np.float32), pids=rng.integers(1, 4, 10), camids=np.zeros(10))
    g = dict(features=rng.normal(size=(30, 4)).astype(np.float32), pids=rng.integers(1, 4, 30), camids=np.ones(30))
    d = dict(features=rng.normal(size=(5, 4)).astype(np.float32))
    for name, data in (("q", q), ("g", g), ("d", d)):
        np.savez(tmp_path / f"{name}.npz", **data)
    proc = run("evaluate.py", "--query", tmp_path / "q.npz", "--gallery", tmp_path / "g.npz", "--distractors",
               tmp_path / "d.npz", "--ap", "official", "--json", tmp_path / "out.json")
    assert proc.returncode == 0, proc.stderr
    assert "mAP" in proc.stdout
    got = json.loads((tmp_path / "out.json").read_text())
    import torch

    expect = evaluate(torch.from_numpy(q["features"]), torch.from_numpy(np.concatenate([g["features"], d["features"]])),
                      q["pids"], np.concatenate([g["pids"], [-2] * 5]), q["camids"], np.concatenate([g["camids"],
                                                                                                     [-1] * 5]),
                      ap="official")
    assert got["mAP"] == pytest.approx(expect.mAP) and got["gallery_size"] == 35
    np.savez(tmp_path / "bad.npz", feats=np.zeros((2, 2)))
    bad = run("evaluate.py", "--query", tmp_path / "bad.npz", "--gallery", tmp_path / "g.npz")
    assert bad.returncode != 0 and "no 'features' array" in bad.stderr


def test_dataset_summary_cli(tiny_market, tmp_path):
    proc = run("dataset_summary.py", "--dataset", "market1501", "--root", tiny_market, "--json", tmp_path / "c.json")
    assert proc.returncode == 0, proc.stderr
    counts = json.loads((tmp_path / "c.json").read_text())
    assert counts["train"]["ids"] == 8 and counts["gallery"]["junk"] > 0 and "gallery" in proc.stdout
    missing = run("dataset_summary.py", "--dataset", "market1501", "--root", tmp_path / "none")
    assert missing.returncode == 2 and "datasets/README.md" in missing.stderr
