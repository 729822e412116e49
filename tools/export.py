#!/usr/bin/env python
"""Export a trained model for deployment: `reid-export` once installed (the code is reid/cli/export.py).

    python tools/export.py --checkpoint runs/synthetic_quick/best.pth --format onnx [--output model.onnx]
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from reid.cli.export import build_parser, main  # noqa: E402,F401 (build_parser: kept importable from here)

if __name__ == "__main__":
    sys.exit(main())
