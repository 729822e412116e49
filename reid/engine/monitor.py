"""Run monitoring: a plain-text log file plus TensorBoard (scalars, rank-list images, embedding projector)."""
from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Optional, Sequence, TypeVar, Union

import numpy as np
import torch

from ..utils.progress import format_seconds
from . import distributed

T = TypeVar("T")


class RunClock:
    """Epoch time and the whole run's ETA, from the steps this process has run (a resumed run counts only its own
    steps: the time of the interrupted session is unknown). Evaluations between epochs are part of the elapsed
    time, so the ETA includes them at their average cost."""

    def __init__(self, total_steps: int, done_steps: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.total, self.first = int(total_steps), int(done_steps)
        self._clock = clock
        self.start = self.epoch_start = clock()

    def start_epoch(self) -> None:
        self.epoch_start = self._clock()

    def eta(self, done_steps: int) -> Optional[float]:
        """Seconds until the last step; None before the first step of this session."""
        ran = done_steps - self.first
        if ran <= 0:
            return None
        return (self._clock() - self.start) / ran * max(0, self.total - done_steps)

    def epoch_text(self, done_steps: int) -> str:
        """`epoch time 0:12, run ETA 3:45` (no ETA after the last step)."""
        text = f"epoch time {format_seconds(self._clock() - self.epoch_start)}"
        eta = self.eta(done_steps)
        return text + (f", run ETA {format_seconds(eta)}" if eta is not None and done_steps < self.total else "")


class StepTimer(Iterator[T]):
    """Iterates over a loader timing each step: `data_time`, the wait for the batch, and `step_time()`, from
    asking for the batch to now (the whole iteration), as torchreid and fast-reid log them."""

    def __init__(self, iterable: Iterable[T], clock: Callable[[], float] = time.perf_counter) -> None:
        self._iter = iter(iterable)
        self._clock = clock
        self.data_time = 0.0
        self._asked = clock()

    def __iter__(self) -> "StepTimer[T]":
        return self

    def __next__(self) -> T:
        self._asked = self._clock()
        item = next(self._iter)
        self.data_time = self._clock() - self._asked
        return item

    def step_time(self) -> float:
        return self._clock() - self._asked


def head_accuracy(outputs: Mapping[str, torch.Tensor], labels: torch.Tensor) -> Optional[torch.Tensor]:
    """Training accuracy of the identity head on this batch (a 0-d tensor, read only when logged, so no extra
    device sync per step); None for a model without one."""
    logits = outputs.get("logits") if isinstance(outputs, Mapping) else None
    if not torch.is_tensor(logits) or logits.dim() != 2 or logits.shape[0] != labels.shape[0]:
        return None
    with torch.no_grad():
        return (logits.argmax(dim=1) == labels).float().mean()


class Monitor:
    """Writes `train.log` and TensorBoard events under the run folder; silent on non-zero ranks."""

    def __init__(self, run_dir: Union[str, Path], tensorboard: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.active = distributed.is_main_process()
        self.logger = logging.getLogger(f"reid.run.{self.run_dir.resolve()}")
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False
        self.writer = None
        self._tensorboard = tensorboard
        self._epoch_step: Optional[int] = None
        self.clock = RunClock(0, 0)  # replaced by start_run() when training starts
        if not self.active:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if not self.logger.handlers:
            fmt = logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S")
            file_handler = logging.FileHandler(self.run_dir / "train.log", encoding="utf-8")
            file_handler.setFormatter(fmt)
            console = logging.StreamHandler(sys.stdout)
            console.setFormatter(logging.Formatter("%(message)s"))
            self.logger.addHandler(file_handler)
            self.logger.addHandler(console)

    @property
    def tensorboard_dir(self) -> Path:
        return self.run_dir / "tensorboard"

    def _writer(self):
        """The TensorBoard writer, made on the first value: a run that fails to start leaves no empty run."""
        if self.writer is None and self.active and self._tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(self.tensorboard_dir))
        return self.writer

    def log(self, message: str) -> None:
        if self.active:
            self.logger.info(message)

    def log_failure(self, exc: BaseException, when: str = "training failed") -> None:
        """Put the error that ended the run in train.log (the console already shows it, the log file did not)."""
        if isinstance(exc, KeyboardInterrupt):
            self.log(f"{when}: interrupted (Ctrl-C)")
        else:
            self.log(f"{when}: {type(exc).__name__}: {exc}")

    def start_run(self, total_steps: int, done_steps: int) -> RunClock:
        self.clock = RunClock(total_steps, done_steps)
        return self.clock

    def step_scalars(self, step: int, timer: Optional[StepTimer] = None,
                     accuracy: Optional[torch.Tensor] = None) -> None:
        """Per-step timing (seconds) and the identity head's training accuracy, next to the losses."""
        values = {}
        if timer is not None:
            values.update({"time/step": timer.step_time(), "time/data": timer.data_time})
        if accuracy is not None:
            values["train/accuracy"] = float(accuracy)
        self.scalars(values, step)

    def scalars(self, values: Mapping[str, float], step: int, prefix: str = "") -> None:
        if values and self._writer() is not None:
            for tag, value in values.items():
                self.writer.add_scalar(f"{prefix}{tag}", float(value), step)

    def epoch_scalars(self, values: Mapping[str, float], epoch: int, global_step: int, prefix: str = "") -> None:
        """Per-epoch values (epoch losses, evaluation metrics) on the same x axis as the per-iteration ones.

        TensorBoard draws every scalar against one step axis; values logged at the epoch number would sit at
        steps 1, 2, ... next to losses at steps 1..N*iters and look like the first iterations. They are logged
        at the global step the epoch ended on instead, with an `epoch` scalar there so steps map back to epochs.
        """
        self.scalars(values, global_step, prefix)
        if self._epoch_step != global_step:  # once per step, however many groups of values an epoch logs
            self._epoch_step = global_step
            self.scalars({"epoch": epoch}, global_step)

    def image(self, tag: str, image_hwc: np.ndarray, step: int) -> None:
        if self._writer() is not None:
            self.writer.add_image(tag, image_hwc, step, dataformats="HWC")

    def embedding(self, features: torch.Tensor, labels: Sequence[str], images: Optional[torch.Tensor], step: int) -> None:
        """Embedding projector; thumbnails are padded to squares (the projector requires square images)."""
        if self._writer() is None:
            return
        label_img = None
        if images is not None:
            n, c, h, w = images.shape
            side = max(h, w)
            label_img = torch.ones((n, c, side, side), dtype=images.dtype)
            top, left = (side - h) // 2, (side - w) // 2
            label_img[:, :, top:top + h, left:left + w] = images
        self.writer.add_embedding(features, metadata=list(labels), label_img=label_img, global_step=step)

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        self._tensorboard = False  # closed: nothing reopens a writer
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        for handler in list(self.logger.handlers):
            handler.close()
            self.logger.removeHandler(handler)
