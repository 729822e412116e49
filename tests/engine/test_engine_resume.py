"""Exact resume after an interruption, NaN stops, and the resume / checkpoint error paths."""
from __future__ import annotations

import pytest
import torch

from engine_helpers import state_equal, stop_at_step, tiny_config
from reid.checkpoint import CheckpointError
from reid.engine.trainer import Trainer, TrainingDiverged, TrainingInterrupted

TERMS = [{"name": "softmax"}, {"name": "triplet"}]
MODEL = {"classifier": "linear"}
TRAIN = {"epochs": 2, "iters_per_epoch": 3, "eval_every": 0, "projector_samples": 0}


def _weights(run_dir):
    return torch.load(run_dir / "checkpoint.pth", weights_only=True)


@pytest.mark.parametrize("pipeline,workers", [("tensor", 0), ("albumentations", 0), ("albumentations", 2)])
def test_kill_and_resume_is_bitwise_identical(pipeline, workers, tiny_market, tmp_path):
    data = {"num_workers": workers, "pipeline": pipeline}
    full = Trainer(tiny_config(tmp_path / "full", tiny_market, TERMS, MODEL, train=TRAIN, data=data), progress=False)
    full.fit()
    full.close()

    cfg = tiny_config(tmp_path / "cut", tiny_market, TERMS, MODEL, train=TRAIN, data=data)
    # Interrupt in the middle of the second epoch (step 5 of 6), as Ctrl-C would.
    first = Trainer(cfg, progress=False, hooks=stop_at_step(cfg, 5))
    with pytest.raises(TrainingInterrupted, match="checkpoint saved"):
        first.fit()
    first.close()
    saved = _weights(tmp_path / "cut")
    assert (saved["epoch"], saved["batch"]) == (1, 2)

    second = Trainer(cfg, resume=True, progress=False)
    second.fit()
    second.close()
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "cut")
    assert state_equal(a["model"], b["model"])
    assert state_equal(a["losses"], b["losses"])
    assert a["optimizer"]["state"].keys() == b["optimizer"]["state"].keys()
    for key in a["optimizer"]["state"]:
        assert state_equal(a["optimizer"]["state"][key], b["optimizer"]["state"][key])


def _all_tensors_equal(a, b):
    assert state_equal(a["model"], b["model"])  # weights and every batch-norm buffer (num_batches_tracked too)
    assert state_equal(a["losses"], b["losses"])
    assert a["optimizer"]["state"].keys() == b["optimizer"]["state"].keys()
    for key in a["optimizer"]["state"]:
        assert state_equal(a["optimizer"]["state"][key], b["optimizer"]["state"][key])
    assert a["global_step"] == b["global_step"]


@pytest.mark.parametrize("pipeline,workers", [("tensor", 0), ("albumentations", 2)])
def test_ctrl_c_inside_a_step_then_resume_is_bitwise_identical(pipeline, workers, tiny_market, tmp_path):
    """A real SIGINT in the middle of a forward pass (BN statistics already updated): the step completes, the
    checkpoint is taken at its end, and the resumed run equals the uninterrupted one in every tensor."""
    import os
    import signal

    data = {"num_workers": workers, "pipeline": pipeline}
    full = Trainer(tiny_config(tmp_path / "full", tiny_market, TERMS, MODEL, train=TRAIN, data=data), progress=False)
    full.fit()
    full.close()

    cfg = tiny_config(tmp_path / "cut", tiny_market, TERMS, MODEL, train=TRAIN, data=data)
    first = Trainer(cfg, progress=False)
    calls = {"n": 0}

    def sigint_mid_forward(module, inputs):
        calls["n"] += 1
        if calls["n"] == 5:  # the fifth training forward: epoch 2, batch 2
            os.kill(os.getpid(), signal.SIGINT)

    handle = first.model.backbone.register_forward_pre_hook(sigint_mid_forward)
    before = signal.getsignal(signal.SIGINT)  # default_int_handler; SIG_IGN when pytest was started in the background
    with pytest.raises(TrainingInterrupted, match="checkpoint saved"):
        first.fit()
    handle.remove()
    first.close()
    saved = _weights(tmp_path / "cut")
    assert (saved["epoch"], saved["batch"], saved["global_step"]) == (1, 2, 5)
    assert signal.getsignal(signal.SIGINT) is before  # the handler is removed again

    second = Trainer(cfg, resume=True, progress=False)
    second.fit()
    second.close()
    _all_tensors_equal(_weights(tmp_path / "full"), _weights(tmp_path / "cut"))


def test_resume_refuses_a_changed_config(tiny_market, tmp_path):
    cfg = tiny_config(tmp_path / "run", tiny_market, TERMS, MODEL, train=TRAIN)
    trainer = Trainer(cfg, progress=False, hooks=stop_at_step(cfg, 1))
    with pytest.raises(TrainingInterrupted):
        trainer.fit()
    changed = tiny_config(tmp_path / "run", tiny_market, TERMS, {"classifier": "linear", "embedding_dim": 64},
                          train=TRAIN)
    with pytest.raises(CheckpointError, match="embedding_dim"):
        Trainer(changed, resume=True, progress=False)


def test_resume_without_checkpoint_names_the_file(tiny_market, tmp_path):
    cfg = tiny_config(tmp_path / "empty", tiny_market, TERMS, MODEL, train=TRAIN)
    with pytest.raises(CheckpointError, match="checkpoint.pth"):
        Trainer(cfg, resume=True, progress=False)


def test_nan_loss_stops_naming_term_and_step(tiny_market, tmp_path):
    cfg = tiny_config(tmp_path / "run", tiny_market, TERMS, MODEL,
                      train={"epochs": 2, "iters_per_epoch": 3, "eval_every": 0, "projector_samples": 0})
    trainer = Trainer(cfg, progress=False)
    real_forward = trainer.losses.forward
    calls = {"n": 0}

    def poisoned(outputs, labels, teacher=None, batch=None):
        total, terms = real_forward(outputs, labels, teacher, batch)
        calls["n"] += 1
        if calls["n"] == 5:  # second epoch, second batch: an epoch-1 checkpoint exists by then
            terms = dict(terms, triplet=torch.tensor(float("nan")))
            total = total + terms["triplet"]
        return total, terms

    trainer.losses.forward = poisoned
    with pytest.raises(TrainingDiverged, match=r"'triplet'.*step 5"):
        trainer.fit()
    trainer.close()
    # The last good checkpoint (end of epoch 1) is kept, with finite weights.
    state = _weights(tmp_path / "run")
    assert state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_kill_9_mid_epoch_then_resume_is_bitwise_identical(tiny_market, tmp_path):
    """A real SIGKILL while training: the last epoch checkpoint is intact and --resume replays the cut epoch
    exactly (every tensor, batch-norm buffers included, equals the uninterrupted run's)."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from engine_helpers import config_file

    # One thread in both processes: the in-process run and the killed subprocess must compute alike.
    train = {"epochs": 3, "iters_per_epoch": 12, "eval_every": 0, "projector_samples": 0, "threads": 1}
    full = Trainer(tiny_config(tmp_path / "full", tiny_market, TERMS, MODEL, train=train), progress=False)
    full.fit()
    full.close()

    cfg = tiny_config(tmp_path / "cut", tiny_market, TERMS, MODEL, train=train)
    tool = Path(__file__).resolve().parents[2] / "tools" / "train.py"
    proc = subprocess.Popen([sys.executable, str(tool), "--config", str(config_file(cfg)), "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"})
    checkpoint = tmp_path / "cut" / "checkpoint.pth"
    deadline = time.time() + 120
    while not checkpoint.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    saved = _weights(tmp_path / "cut")
    assert saved["epoch"] < 3  # killed before the end

    second = Trainer(cfg, resume=True, progress=False)
    second.fit()
    second.close()
    _all_tensors_equal(_weights(tmp_path / "full"), _weights(tmp_path / "cut"))


def test_resume_refuses_a_cache_max_gb_that_switches_the_pipeline(tiny_market, tmp_path):
    """Issue 28 item 12: data.cache_max_gb is resume-safe, but not when it moves the run to the other pipeline
    (its augmentations differ: the resumed run would not be the one interrupted)."""
    import hashlib

    data = {"cache_dir": str(tmp_path / "cache")}
    cfg = tiny_config(tmp_path / "run", tiny_market, TERMS, MODEL, data=data,
                      train={"epochs": 2, "iters_per_epoch": 2, "eval_every": 0, "projector_samples": 0})
    first = Trainer(cfg, progress=False, hooks=stop_at_step(cfg, 1))
    assert first.loader.pipeline == "tensor"
    with pytest.raises(TrainingInterrupted):
        first.fit()
    first.close()
    checkpoint = tmp_path / "run" / "checkpoint.pth"
    before = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    small = {**cfg, "data": {**cfg["data"], "cache_max_gb": 1e-9}}
    with pytest.raises(CheckpointError, match=r"it was trained on the tensor pipeline, this config gives the "
                                              r"albumentations pipeline \(data.cache_max_gb=1e-09, the "
                                              r"checkpoint's: 8.0\); resume with data.cache_max_gb=8.0"):
        Trainer(small, resume=True, progress=False)
    assert hashlib.sha256(checkpoint.read_bytes()).hexdigest() == before
    larger = {**cfg, "data": {**cfg["data"], "cache_max_gb": 16.0}}  # same pipeline: still resumes
    resumed = Trainer(larger, resume=True, progress=False)
    assert (resumed.start_epoch, resumed.start_batch, resumed.global_step) == (0, 1, 1)  # where it stopped
    resumed.close()
