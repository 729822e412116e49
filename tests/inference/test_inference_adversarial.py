"""Adversarial inference cases (issue 28): non-finite weights or features are one error naming where, in the
library, tools/test.py, tools/export.py and the demo; never a ranking that looks valid."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from reid.checkpoint import CheckpointError, load_model_from_checkpoint
from reid.evaluation import features as features_module
from reid.inference import search

REPO = Path(__file__).resolve().parents[2]


def run(script, *args):
    return subprocess.run([sys.executable, str(REPO / "tools" / script), *map(str, args)], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"})


@pytest.fixture()
def nan_checkpoint(tiny_checkpoint, tmp_path):
    state = torch.load(tiny_checkpoint, weights_only=True)
    key = next(k for k, v in state["model"].items() if v.is_floating_point() and v.ndim == 4)
    state["model"][key] = state["model"][key].contiguous().clone()  # saved channels-last
    state["model"][key].view(-1)[0] = float("nan")
    path = tmp_path / "run" / "nan.pth"
    path.parent.mkdir()
    torch.save(state, path)
    return path, key


def test_search_refuses_non_finite_features_naming_the_rows():
    q = torch.nn.functional.normalize(torch.randn(2, 4), dim=1)
    g = torch.nn.functional.normalize(torch.randn(5, 4), dim=1)
    g[3, 0] = float("nan")  # before: index -1 (the last item) at distance inf
    with pytest.raises(ValueError, match=r"gallery features hold NaN or inf in 1 row\(s\) \(first: 3\)"):
        search(q, g, topk=3)
    q[1, 2] = float("inf")
    with pytest.raises(ValueError, match=r"query features hold NaN or inf in 1 row\(s\) \(first: 1\)"):
        search(q, g, topk=3)


def test_feature_extraction_refuses_nan_features_naming_the_set(monkeypatch):
    monkeypatch.setattr(features_module, "embed", lambda model, images: torch.full((len(images), 4), float("nan")))
    with pytest.raises(ValueError, match=r"gallery: the model produced NaN or inf features for 3 of 3 images"):
        features_module.extract_features(torch.nn.Identity(), [torch.zeros(3, 3, 8, 4)], "cpu", desc="gallery")


def test_nan_checkpoint_is_refused_by_the_library_test_export_and_demo(nan_checkpoint, tiny_market, tmp_path):
    path, key = nan_checkpoint
    with pytest.raises(CheckpointError, match=rf"{path} holds non-finite weights \(NaN or inf\) in {key}"):
        load_model_from_checkpoint(path)
    before = sorted(os.listdir(path.parent))

    test = run("test.py", "--checkpoint", path, "--no-progress")
    assert test.returncode == 2 and "non-finite weights" in test.stderr and str(path) in test.stderr, test.stderr
    assert "Traceback" not in test.stderr

    export = run("export.py", "--checkpoint", path, "--output", tmp_path / "model.onnx")
    assert export.returncode == 2, export.stdout + export.stderr
    assert "non-finite weights" in export.stderr and key in export.stderr and "Traceback" not in export.stderr
    assert not (tmp_path / "model.onnx").exists()
    assert [p for p in os.listdir(tmp_path) if ".tmp" in p] == []  # no temporary export left

    query = sorted((tiny_market / "query").glob("*.jpg"))[0]
    demo = run("demo.py", "--checkpoint", path, "--gallery", tiny_market / "bounding_box_test", "--query", query,
               "--out", tmp_path / "demo", "--no-progress")
    assert demo.returncode == 2 and "non-finite weights" in demo.stderr, demo.stdout + demo.stderr
    assert sorted(os.listdir(path.parent)) == before  # the checkpoint folder is untouched
    assert np.isnan(torch.load(path, weights_only=True)["model"][key].reshape(-1)[0].item())  # and the file too
