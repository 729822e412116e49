"""The teacher of a distillation run: built from its own config and checkpoint, frozen, eval mode, no grad."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch

from ..config import load_config
from ..builders import build_model_from_config
from ..checkpoint import CheckpointError, load_checkpoint, load_model_state


class Teacher(torch.nn.Module):
    """Wraps a trained model so that it can only be used for inference.

    `train()` calls are ignored (the teacher stays in eval mode, so its BN statistics never move) and its
    parameters never receive gradients.
    """

    def __init__(self, config_path: Union[str, Path], checkpoint_path: Union[str, Path], num_classes: Optional[int],
                 device: Union[str, torch.device] = "cpu") -> None:
        super().__init__()
        cfg = load_config(config_path)
        state = load_checkpoint(checkpoint_path)
        saved_model = (state.get("config") or {}).get("model", {})
        expected = cfg["model"]["backbone"]
        if saved_model and saved_model.get("backbone") != expected:
            raise CheckpointError(
                f"teacher checkpoint {checkpoint_path} holds a '{saved_model.get('backbone')}' model but the teacher "
                f"config {config_path} builds '{expected}'"
            )
        # The teacher was trained on its own label set: size its classifier from the checkpoint.
        saved_classes = state.get("num_classes")
        self.model = build_model_from_config(cfg, saved_classes if saved_classes is not None else num_classes)
        load_model_state(self.model, state["model"], str(checkpoint_path))
        self.model.to(device)
        self.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.config = cfg

    def train(self, mode: bool = True) -> "Teacher":  # noqa: D102 - always eval
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> Dict[str, Any]:
        return self.model(images, return_dict=True)
