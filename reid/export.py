"""Export the inference model (image -> L2-normalised embedding) to ONNX, with a dynamic batch axis, and check
the exported graph against PyTorch when onnxruntime is installed (`pip install -e ".[onnx]"`)."""
from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path
from typing import Optional, Tuple, Union

import numpy as np
import torch


class _Embedder(torch.nn.Module):
    """Eval-mode wrapper returning only the normalised embedding tensor."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model.eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = self.model(images)
        return out["normalized"] if isinstance(out, dict) else out


def export_onnx(checkpoint: Union[str, Path], output: Union[str, Path], height: Optional[int] = None,
                width: Optional[int] = None, opset: int = 18) -> Path:
    """Write the checkpoint's inference model as ONNX (input `images` (B, 3, H, W), output `embedding`)."""
    from .inference import FeatureExtractor

    extractor = FeatureExtractor(checkpoint, device="cpu")
    tcfg = extractor.config["transforms"] or {}
    h = int(height or tcfg.get("height", 256))
    w = int(width or tcfg.get("width", 128))
    module = _Embedder(extractor.model)
    sample = torch.randn(2, 3, h, w)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp{os.getpid()}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if importlib.util.find_spec("onnxscript") is not None:
            program = torch.onnx.export(module, (sample,), input_names=["images"], output_names=["embedding"],
                                        dynamic_shapes=({0: torch.export.Dim("batch")},), opset_version=opset,
                                        dynamo=True, verbose=False)
            program.save(str(tmp))
        else:  # the TorchScript-based exporter needs no onnxscript
            torch.onnx.export(module, (sample,), str(tmp), input_names=["images"], output_names=["embedding"],
                              dynamic_axes={"images": {0: "batch"}, "embedding": {0: "batch"}},
                              opset_version=opset, dynamo=False)
    os.replace(tmp, output)
    return output


def verify_onnx(checkpoint: Union[str, Path], onnx_path: Union[str, Path], batch_sizes=(1, 3),
                seed: int = 0) -> Optional[Tuple[float, Tuple[int, ...]]]:
    """Max |onnxruntime - PyTorch| over random inputs of several batch sizes; None without onnxruntime."""
    if importlib.util.find_spec("onnxruntime") is None:
        return None
    import onnxruntime as ort

    from .inference import FeatureExtractor

    extractor = FeatureExtractor(checkpoint, device="cpu")
    module = _Embedder(extractor.model)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    shape = session.get_inputs()[0].shape
    h, w = int(shape[2]), int(shape[3])
    rng = np.random.default_rng(seed)
    worst = 0.0
    for b in batch_sizes:
        x = rng.standard_normal((b, 3, h, w)).astype(np.float32)
        with torch.no_grad():
            expected = module(torch.from_numpy(x)).numpy()
        got = session.run(None, {session.get_inputs()[0].name: x})[0]
        if got.shape != expected.shape:
            raise RuntimeError(f"ONNX output shape {got.shape} differs from PyTorch {expected.shape} at batch {b}")
        worst = max(worst, float(np.abs(got - expected).max()))
    return worst, tuple(batch_sizes)
