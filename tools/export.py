#!/usr/bin/env python
"""Export a trained model for deployment.

    python tools/export.py --checkpoint runs/synthetic_quick/best.pth --format onnx [--output model.onnx]

The exported model maps images (B, 3, H, W), normalised as in the test pipeline, to L2-normalised embeddings,
with a dynamic batch axis. With onnxruntime installed (pip install -e ".[onnx]") the export is checked against
PyTorch and the max abs difference reported.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--format", choices=["onnx"], default="onnx")
    parser.add_argument("--output", help="default: <checkpoint>.onnx")
    parser.add_argument("--height", type=int)
    parser.add_argument("--width", type=int)
    parser.add_argument("--opset", type=int, default=18)
    args = parser.parse_args()

    from reid.engine.checkpoint import CheckpointError
    from reid.export import export_onnx, verify_onnx

    output = Path(args.output or Path(args.checkpoint).with_suffix(".onnx"))
    try:
        path = export_onnx(args.checkpoint, output, args.height, args.width, args.opset)
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"exported {path} ({path.stat().st_size / 1e6:.1f} MB)")
    check = verify_onnx(args.checkpoint, path)
    if check is None:
        print("onnxruntime is not installed: skipped the parity check (pip install -e \".[onnx]\")")
    else:
        diff, batches = check
        print(f"parity with PyTorch: max abs diff {diff:.2e} over batch sizes {list(batches)}")
        if diff > 1e-3:
            print("error: exported model disagrees with PyTorch", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
