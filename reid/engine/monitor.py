"""Run monitoring: a plain-text log file plus TensorBoard (scalars, rank-list images, embedding projector)."""
from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import numpy as np
import torch

from . import distributed


class Monitor:
    """Writes `train.log` and TensorBoard events under the run folder; silent on non-zero ranks."""

    def __init__(self, run_dir: Union[str, Path], tensorboard: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.active = distributed.is_main_process()
        self.logger = logging.getLogger(f"reid.run.{self.run_dir.resolve()}")
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False
        self.writer = None
        self._epoch_step: Optional[int] = None
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
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(self.tensorboard_dir))

    @property
    def tensorboard_dir(self) -> Path:
        return self.run_dir / "tensorboard"

    def log(self, message: str) -> None:
        if self.active:
            self.logger.info(message)

    def scalars(self, values: Mapping[str, float], step: int, prefix: str = "") -> None:
        if self.writer is not None:
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
        if self.writer is not None:
            self.writer.add_image(tag, image_hwc, step, dataformats="HWC")

    def embedding(self, features: torch.Tensor, labels: Sequence[str], images: Optional[torch.Tensor], step: int) -> None:
        """Embedding projector; thumbnails are padded to squares (the projector requires square images)."""
        if self.writer is None:
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
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        for handler in list(self.logger.handlers):
            handler.close()
            self.logger.removeHandler(handler)
