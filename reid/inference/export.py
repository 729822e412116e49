"""Export the inference model (image -> L2-normalised embedding) to ONNX, with a dynamic batch axis, and check
the exported graph against PyTorch when onnxruntime is installed (`pip install -e ".[onnx]"`).

The graph takes already preprocessed images; what "preprocessed" means (input size, resize, scaling, mean/std,
channel order, layout) is written into the model's metadata (`metadata_props`, key `reid.preprocessing`, JSON)
and its doc string, so a deployment needs the .onnx file alone. `preprocess()` is the reference implementation
that reads nothing but that metadata; the parity test holds it to the PyTorch test pipeline.
"""
from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..utils import atomic_path, install_hint

PathLike = Union[str, Path]
METADATA_KEY = "reid.preprocessing"


class ExportError(ValueError):
    """A checkpoint that cannot be exported, or an ONNX file without reid's preprocessing metadata."""


class _Embedder(torch.nn.Module):
    """Eval-mode wrapper returning only the normalised embedding tensor."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model.eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = self.model(images)
        return out["normalized"] if isinstance(out, dict) else out


def _extractor(checkpoint: PathLike):
    from .extractor import FeatureExtractor

    try:
        return FeatureExtractor(checkpoint, device="cpu")
    except (OSError, RuntimeError, ValueError, KeyError) as exc:  # unreadable file, config or weights
        raise ExportError(f"cannot load {checkpoint} for export: {exc}") from None


def preprocessing_spec(config: Mapping[str, Any], height: Optional[int] = None,
                       width: Optional[int] = None) -> Dict[str, Any]:
    """What the test pipeline does to an image before the network, as plain data (see `preprocess`)."""
    from ..data.transforms import resolve

    t = resolve(config.get("transforms"))
    return {
        "input": "images",
        "layout": "NCHW",
        "dtype": "float32",
        "color": "RGB",
        "height": int(height or t["height"]),
        "width": int(width or t["width"]),
        "resize": "bilinear",  # albumentations' Resize default (cv2.INTER_LINEAR), aspect ratio not kept
        "scale": 1.0 / 255.0,
        "mean": [float(v) for v in t["mean"]],
        "std": [float(v) for v in t["std"]],
        "output": "embedding",
        "output_normalized": True,
        "metric": str(config.get("test", {}).get("metric", "euclidean")),
    }


def describe(spec: Mapping[str, Any], path: PathLike = "model.onnx") -> str:
    """How to run an exported model: the preprocessing in words and a numpy + onnxruntime snippet."""
    h, w = spec["height"], spec["width"]
    mean = ", ".join(f"{v:g}" for v in spec["mean"])
    std = ", ".join(f"{v:g}" for v in spec["std"])
    return (
        f"input '{spec['input']}': float32 ({spec['layout']}) batch x 3 x {h} x {w}, {spec['color']}; output "
        f"'{spec['output']}': batch x D, L2-normalised (rank by {spec['metric']} distance).\n"
        f"preprocessing (stored in the model's metadata, key {METADATA_KEY}): resize to {h}x{w} (bilinear, "
        f"aspect ratio not kept), divide by 255, subtract mean [{mean}], divide by std [{std}], HWC -> CHW.\n"
        "run it:\n"
        "    import cv2, numpy as np, onnxruntime as ort\n"
        "    rgb = cv2.cvtColor(cv2.imread('person.jpg'), cv2.COLOR_BGR2RGB)\n"
        f"    x = cv2.resize(rgb, ({w}, {h}), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255\n"
        f"    x = ((x - np.float32([{mean}])) / np.float32([{std}])).transpose(2, 0, 1)[None]\n"
        f"    embedding = ort.InferenceSession('{path}').run(None, {{'{spec['input']}': x}})[0]\n"
        "  or, with reid installed: reid.inference.preprocess([rgb], reid.inference.read_preprocessing(path))")


def export_onnx(checkpoint: PathLike, output: PathLike, height: Optional[int] = None,
                width: Optional[int] = None, opset: int = 18) -> Path:
    """Write the checkpoint's inference model as ONNX (input `images` (B, 3, H, W), output `embedding`), with the
    preprocessing it expects in the model's metadata."""
    if importlib.util.find_spec("onnx") is None:
        raise ExportError(f"ONNX export needs the onnx package: {install_hint('onnx')}")
    extractor = _extractor(checkpoint)
    spec = preprocessing_spec(extractor.config, height, width)
    h, w = spec["height"], spec["width"]
    module = _Embedder(extractor.model)
    sample = torch.randn(2, 3, h, w)
    output = Path(output)
    with atomic_path(output, keep_extension=True) as tmp:
        _export_to(module, sample, opset, spec, output, tmp)
    return output


def _export_to(module: torch.nn.Module, sample: torch.Tensor, opset: int, spec: Dict[str, Any], output: Path,
               tmp: Path) -> None:
    import onnx

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
    proto = onnx.load(str(tmp))
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(spec)
    proto.doc_string = describe(spec, output.name)
    onnx.save(proto, str(tmp))


def read_preprocessing(onnx_path: PathLike) -> Dict[str, Any]:
    """The preprocessing spec stored in an exported model (onnx needed to read it)."""
    import onnx

    proto = onnx.load(str(onnx_path), load_external_data=False)
    for entry in proto.metadata_props:
        if entry.key == METADATA_KEY:
            return json.loads(entry.value)
    raise ExportError(f"{onnx_path} has no '{METADATA_KEY}' metadata (exported by another tool or an older reid)")


def preprocess(images: Sequence[np.ndarray], spec: Mapping[str, Any]) -> np.ndarray:
    """RGB uint8 images (H, W, 3) -> the model input (B, 3, H, W) float32, using only `spec` (the metadata)."""
    import cv2

    if spec.get("layout") != "NCHW" or spec.get("resize") != "bilinear":
        raise ExportError(f"unsupported preprocessing spec: layout {spec.get('layout')!r}, resize "
                          f"{spec.get('resize')!r}")
    size = (int(spec["width"]), int(spec["height"]))
    mean = np.asarray(spec["mean"], np.float32)
    std = np.asarray(spec["std"], np.float32)
    batch = []
    for image in images:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 image (H, W, 3), got shape {image.shape} dtype {image.dtype}")
        x = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR).astype(np.float32) * np.float32(spec["scale"])
        batch.append(((x - mean) / std).transpose(2, 0, 1))
    return np.ascontiguousarray(np.stack(batch), dtype=np.float32)


def verify_onnx(checkpoint: PathLike, onnx_path: PathLike, batch_sizes=(1, 3),
                seed: int = 0) -> Optional[Tuple[float, Tuple[int, ...]]]:
    """Max |onnxruntime - PyTorch| over random inputs of several batch sizes; None without onnxruntime."""
    if importlib.util.find_spec("onnxruntime") is None:
        return None
    import onnxruntime as ort

    module = _Embedder(_extractor(checkpoint).model)
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
        diff = float(np.abs(got - expected).max())
        worst = max(worst, diff if np.isfinite(diff) else float("inf"))  # max() skips NaN: it must fail the check
    return worst, tuple(batch_sizes)
