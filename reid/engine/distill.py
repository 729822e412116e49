"""The teacher of a distillation run: built from its own config and checkpoint, frozen, eval mode, no grad."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch

from ..checkpoint import CheckpointError, load_model_from_checkpoint


class Teacher(torch.nn.Module):
    """Wraps a trained model so that it can only be used for inference.

    `train()` calls are ignored (the teacher stays in eval mode, so its BN statistics never move) and its
    parameters never receive gradients.
    """

    def __init__(self, config_path: Union[str, Path], checkpoint_path: Union[str, Path], num_classes: Optional[int],
                 device: Union[str, torch.device] = "cpu") -> None:
        super().__init__()
        try:
            # sized by the checkpoint's own label set (`num_classes` only when the checkpoint has none)
            self.model, self.config = load_model_from_checkpoint(checkpoint_path, config_path, device, num_classes)
        except CheckpointError as exc:
            raise CheckpointError(f"teacher: {exc}") from None
        self.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> "Teacher":  # noqa: D102 - always eval
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> Dict[str, Any]:
        return self.model(images, return_dict=True)
