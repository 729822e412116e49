"""The one feature-extraction loop: a model in eval mode over batches of images, optionally averaged with the
mirrored images, L2-normalised float32 features on the CPU. Used by the engine's evaluation (`reid.engine.evaluator`)
and by `reid.FeatureExtractor` (inference and the demo), so training-time evaluation, tools/test.py and the demo
embed an image identically."""
from __future__ import annotations

from typing import Iterable, Mapping, Union

import torch


def embed(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The model's embedding of a batch (the `normalized` entry when it returns its output dict)."""
    out = model(images)
    return out["normalized"] if isinstance(out, Mapping) else out


@torch.no_grad()
def extract_features(model: torch.nn.Module, batches: Iterable[torch.Tensor], device: Union[str, torch.device],
                     flip: bool = False, amp: bool = False, desc: str = "features") -> torch.Tensor:
    """(N, D) features of every image of `batches` (each (B, 3, H, W)), in order, on the CPU.

    The model runs in eval mode (its mode is restored afterwards); `flip` adds the embedding of the horizontally
    mirrored batch before the normalisation; `amp` runs the model under autocast on CUDA. An iterable that yields no
    batch is a ValueError naming `desc`.
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    feats = []
    try:
        for images in batches:
            images = images.to(device, non_blocking=True)
            with torch.autocast(device_type=device.type, enabled=amp and device.type == "cuda"):
                out = embed(model, images)
                if flip:
                    out = out + embed(model, torch.flip(images, dims=[3]))
            feats.append(torch.nn.functional.normalize(out.float(), dim=1).cpu())
    finally:
        model.train(was_training)
    if not feats:
        raise ValueError(f"{desc}: the loader produced no images")
    out = torch.cat(feats)
    rows = torch.nonzero(~torch.isfinite(out).all(dim=1)).flatten().tolist()
    if rows:  # evaluated or searched, NaN features give a ranking that looks valid and means nothing
        raise ValueError(f"{desc}: the model produced NaN or inf features for {len(rows)} of {len(out)} images "
                         f"(first rows: {', '.join(map(str, rows[:5]))})")
    return out
