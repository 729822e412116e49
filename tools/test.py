#!/usr/bin/env python
"""Evaluate a trained checkpoint.

    python tools/test.py --config configs/<x>.yaml --checkpoint runs/<x>/best.pth [--rerank] [--multi-query mean]
        [--distractors DIR] [--ap official|mean] [--protocol single-shot] [--high-order] [--visualize N]
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reid.cli import test_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(test_main())
