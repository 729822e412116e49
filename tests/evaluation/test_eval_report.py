"""EvaluationResult's results file (reid.evaluation.report): written whole or not at all."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from reid.evaluation import evaluate


def test_save_json_into_a_folder_leaves_no_temporary_file(tmp_path):
    result = evaluate(torch.eye(3), torch.eye(3), np.arange(3), np.arange(3), np.zeros(3), np.ones(3))
    (tmp_path / "taken").mkdir()
    with pytest.raises(IsADirectoryError, match="is a folder"):
        result.save_json(tmp_path / "taken")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
    # each query's only match is its own identity at rank 1: every figure is 1
    saved = json.loads(result.save_json(tmp_path / "r.json").read_text())
    assert saved["mAP"] == 1.0 and saved["rank1"] == 1.0 and saved["num_queries"] == 3
