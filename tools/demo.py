#!/usr/bin/env python
"""Search a folder of person crops with a trained model.

    python tools/demo.py --checkpoint runs/synthetic_quick/best.pth \
        --gallery datasets/Market-1501-synthetic/bounding_box_test \
        --query datasets/Market-1501-synthetic/query/0151_c1s1_000000_00.jpg --topk 10 --out runs/demo

Prints a ranked table per query, writes one PNG rank list per query and an index.html showing them all.
Gallery features are cached in the output folder; a second run only embeds new or changed images.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reid.cli import demo_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(demo_main())
