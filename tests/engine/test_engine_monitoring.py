"""Issue 29 items 10-12: the whole run's ETA and epoch time in the plain log, step/data time and the identity
head's training accuracy in TensorBoard, and a failed start that says why in train.log without an empty
TensorBoard run; epoch scalars on the global step axis."""
from __future__ import annotations

import re
import shutil

import pytest
import torch

from engine_helpers import tiny_config
from reid.engine.monitor import RunClock, StepTimer, head_accuracy
from reid.engine.trainer import Trainer

TERMS = [{"name": "softmax"}, {"name": "triplet"}]


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_run_clock_eta_counts_this_sessions_steps_and_the_epoch_time():
    clock = FakeClock()
    run = RunClock(total_steps=100, done_steps=20, clock=clock)  # resumed at step 20
    assert run.eta(20) is None  # no step of this session yet: no guess
    clock.now += 30
    assert run.eta(30) == pytest.approx(3 * 70)  # 10 steps in 30 s, 70 to go
    run.start_epoch()
    clock.now += 75
    assert run.epoch_text(55) == "epoch time 1:15, run ETA 2:15"  # 35 steps in 105 s: 3 s per step, 45 left
    assert run.epoch_text(100) == "epoch time 1:15"  # finished: no ETA


def test_step_timer_splits_data_time_from_step_time():
    clock = FakeClock()

    def slow_loader():
        for i in range(2):
            clock.now += 0.5  # waiting for the batch
            yield i

    timer = StepTimer(slow_loader(), clock=clock)
    for _ in timer:
        clock.now += 2.0  # the forward/backward pass
        assert timer.data_time == pytest.approx(0.5) and timer.step_time() == pytest.approx(2.5)


def test_head_accuracy_is_the_fraction_of_correct_argmax():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0], [0.0, 5.0]])
    assert float(head_accuracy({"logits": logits}, torch.tensor([0, 1, 1, 0]))) == pytest.approx(0.5)
    assert head_accuracy({"embedding": logits}, torch.tensor([0, 1, 1, 0])) is None  # no identity head


@pytest.fixture(scope="module")
def logged_run(tiny_market, tmp_path_factory):
    run = tmp_path_factory.mktemp("monitoring") / "run"
    cfg = tiny_config(run, tiny_market, TERMS, {"classifier": "linear"},
                      train={"epochs": 3, "iters_per_epoch": 2, "eval_every": 0, "projector_samples": 0})
    trainer = Trainer(cfg, progress=False)
    trainer.fit()
    trainer.close()
    return run


def test_plain_log_has_epoch_time_and_run_eta(logged_run):
    lines = [line for line in (logged_run / "train.log").read_text().splitlines() if " epoch " in f" {line}"]
    epoch_lines = [line for line in lines if re.search(r"epoch \d: ", line)]
    assert len(epoch_lines) == 3, lines
    for line in epoch_lines[:2]:
        assert re.search(r", epoch time \d+:\d\d, run ETA \d+:\d\d$", line), line
    assert re.search(r", epoch time \d+:\d\d$", epoch_lines[2]), epoch_lines[2]  # the last epoch: no ETA


def test_tensorboard_has_step_time_data_time_and_head_accuracy(logged_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logged_run / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    values = {tag: [e.value for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    for tag in ("time/step", "time/data", "train/accuracy"):
        assert len(values.get(tag, [])) == 6, (tag, sorted(values))  # every step (log_every 1) of 3 x 2
    assert all(0 < s < 60 for s in values["time/step"])
    assert all(0 <= d <= s for d, s in zip(values["time/data"], values["time/step"]))
    # the fraction of the 4 x 4 batch the identity head gets right: a multiple of 1/16
    assert all(0 <= a <= 1 and a * 16 == round(a * 16) for a in values["train/accuracy"])


def test_failed_start_logs_the_error_and_leaves_no_tensorboard_run(tiny_market, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tiny_market, data)
    broken = sorted((data / "bounding_box_train").glob("*.jpg"))[0]
    broken.write_bytes(b"not a jpeg")
    run = tmp_path / "run"
    cfg = tiny_config(run, data, TERMS, {"classifier": "linear"}, train={"epochs": 1, "iters_per_epoch": 1})
    with pytest.raises(Exception) as info:
        Trainer(cfg, progress=False)
    log = (run / "train.log").read_text()
    assert "failed to start: " in log and broken.name in log and str(info.value).splitlines()[0] in log
    assert not (run / "tensorboard").exists()


def test_failure_during_training_is_in_the_log(tiny_market, tmp_path, monkeypatch):
    run = tmp_path / "run"
    cfg = tiny_config(run, tiny_market, TERMS, {"classifier": "linear"},
                      train={"epochs": 1, "iters_per_epoch": 2, "eval_every": 0, "projector_samples": 0})
    trainer = Trainer(cfg, progress=False)

    def broken_step(*args, **kwargs):
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(trainer, "train_step", broken_step)
    with pytest.raises(RuntimeError, match="simulated"):
        trainer.fit()
    trainer.close()
    assert "training failed: RuntimeError: CUDA out of memory (simulated)" in (run / "train.log").read_text()


def test_cache_line_says_its_size_place_and_how_to_move_or_clean_it(logged_run):
    log = (logged_run / "train.log").read_text()
    line = next(line for line in log.splitlines() if "decoded images at 64x32" in line)
    count = int(re.search(r"train: (\d+) decoded", line).group(1))
    size_mb = count * 64 * 32 * 3 / 1e6
    assert f"({size_mb:.1f} MB; data.cache_dir=PATH puts the cache elsewhere, data.cache_dir=off keeps it in " \
           "memory; deleting " in line and ".reid_cache only costs a rebuild)" in line


def test_epoch_scalars_share_the_global_step_axis(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from reid.engine.monitor import Monitor

    monitor = Monitor(tmp_path / "run")
    monitor.scalars({"loss/total": 1.0}, 35)
    monitor.epoch_scalars({"total": 0.9}, epoch=1, global_step=40, prefix="epoch_loss/")
    monitor.epoch_scalars({"mAP": 0.5}, epoch=1, global_step=40, prefix="eval/")
    monitor.epoch_scalars({"total": 0.8}, epoch=2, global_step=80, prefix="epoch_loss/")
    monitor.close()
    acc = EventAccumulator(str(monitor.tensorboard_dir), size_guidance={"scalars": 0})
    acc.Reload()
    steps = {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    assert steps["epoch_loss/total"] == [(40, pytest.approx(0.9)), (80, pytest.approx(0.8))]
    assert steps["eval/mAP"] == [(40, 0.5)] and steps["epoch"] == [(40, 1.0), (80, 2.0)]
