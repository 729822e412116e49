"""The tensor data path trains and evaluates where albumentations and numba are not installed (the lent GPU
machines have torch, torchvision and OpenCV but cannot pip install)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from engine_helpers import BLOCK_OPTIONAL_DEPS, tiny_config



def test_training_and_evaluation_without_albumentations_and_numba(tiny_market, tmp_path):
    cfg = tiny_config(tmp_path / "run", tiny_market, [{"name": "softmax"}, {"name": "triplet"}],
                      {"classifier": "linear"}, data={"pipeline": "tensor"},
                      train={"epochs": 1, "iters_per_epoch": 2, "eval_every": 1, "projector_samples": 0,
                             "ranklist_queries": 0})
    script = BLOCK_OPTIONAL_DEPS + (
        "from reid.engine.trainer import Trainer\n"
        "from reid.config import load_config\n"
        f"trainer = Trainer(load_config({str(tmp_path / 'run.yaml')!r}), progress=False)\n"
        "result = trainer.fit()\n"
        "assert 'albumentations' not in sys.modules and 'numba' not in sys.modules\n"
        "print('mAP', result.mAP)\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                          cwd=Path(__file__).resolve().parents[2], env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "mAP" in proc.stdout and (tmp_path / "run" / "checkpoint.pth").is_file()
    assert cfg["data"]["pipeline"] == "tensor"
