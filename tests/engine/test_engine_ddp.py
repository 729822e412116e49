"""Two-process CPU training with torchrun (gloo): completes, with identical weights on both ranks."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from engine_helpers import config_file, tiny_config

REPO = Path(__file__).resolve().parents[2]


def test_torchrun_two_processes_on_cpu(tiny_market, tmp_path):
    cfg = tiny_config(tmp_path / "ddp", tiny_market, [{"name": "softmax"}, {"name": "triplet"}],
                      {"classifier": "linear"}, data={"p": 2, "k": 4},
                      train={"epochs": 2, "iters_per_epoch": 2, "eval_every": 2, "projector_samples": 0})
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(REPO / "tools" / "train.py"), "--config", str(config_file(cfg)), "--no-progress"],
                          capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = (tmp_path / "ddp" / "train.log").read_text()
    assert "world size 2" in log
    assert "weights identical on all 2 ranks: True" in log
    state = torch.load(tmp_path / "ddp" / "checkpoint.pth", weights_only=True)
    assert state["epoch"] == 2 and "mAP" in log
