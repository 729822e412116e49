"""Export a trained model for deployment (`reid-export`; tools/export.py in a checkout).

    reid-export --checkpoint runs/synthetic_quick/best.pth --format onnx [--output model.onnx]

The exported model maps preprocessed images (B, 3, H, W) to L2-normalised embeddings, with a dynamic batch axis.
The preprocessing (input size, resize, mean/std, channel order, layout) is stored in the model's metadata and
printed after the export with a snippet that runs the model. With onnxruntime installed (the `onnx` extra)
the export is checked against PyTorch and the max abs difference reported.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from ..utils import install_hint


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reid-export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="checkpoint of a training run (its config is embedded)")
    parser.add_argument("--format", choices=["onnx"], default="onnx", help="export format")
    parser.add_argument("--output", help="where the model goes (default: <checkpoint>.onnx); never over the "
                        "checkpoint, another checkpoint or a file this tool did not write, unless --force")
    parser.add_argument("--force", action="store_true",
                        help="let --output replace an existing file that is not an export of this tool (never the "
                        "--checkpoint itself)")
    parser.add_argument("--height", type=int, help="input height (default: the config's transforms.height)")
    parser.add_argument("--width", type=int, help="input width (default: the config's transforms.width)")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset version")
    parser.add_argument("--no-progress", action="store_true",
                        help="accepted like on every tool; the export draws no progress bars")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """`reid-export`: exit 0, 1 when the export disagrees with PyTorch, 2 with a one-line error."""
    args = build_parser().parse_args(argv)

    from ..inference.export import ExportError, describe, export_onnx, read_preprocessing, verify_onnx

    output = Path(args.output or Path(args.checkpoint).with_suffix(".onnx"))
    for name, value in (("--height", args.height), ("--width", args.width)):
        if value is not None and value < 1:
            print(f"error: {name} must be a positive number of pixels, got {value}", file=sys.stderr)
            return 2
    from .outputs import output_problem

    def ours(existing: Path) -> bool:  # an earlier export (re-running the command replaces it)
        try:
            read_preprocessing(existing)
            return True
        except Exception:  # noqa: BLE001 - onnx raises several types for a file that is not a model
            return False

    problem = output_problem(output, "--output", [("--checkpoint", args.checkpoint)], ours=ours, force=args.force)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        path = export_onnx(args.checkpoint, output, args.height, args.width, args.opset)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # an unwritable or special folder (/proc): the temporary file is already removed
        print(f"error: cannot write --output {output}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"exported {path} ({path.stat().st_size / 1e6:.1f} MB)")
    print(describe(read_preprocessing(path), path))
    check = verify_onnx(args.checkpoint, path)
    if check is None:
        print(f"onnxruntime is not installed: skipped the parity check ({install_hint('onnx')})")
    else:
        diff, batches = check
        print(f"parity with PyTorch: max abs diff {diff:.2e} over batch sizes {list(batches)}")
        if diff > 1e-3:
            print("error: exported model disagrees with PyTorch", file=sys.stderr)
            return 1
    return 0

