#!/usr/bin/env python
"""Train a re-ID model.

    python tools/train.py                                   # embedded default: synthetic data, CPU
    python tools/train.py --config configs/<x>.yaml key.sub=value ...
    python tools/train.py --config sn/market1501 --print-config   # a packaged config by name; show it resolved
    python tools/train.py ... > train.out 2>&1   # redirected: an ETA line every 30 s, no bars (--no-progress: none)
    torchrun --nproc_per_node=2 tools/train.py --config ...  # distributed (gloo on CPU, nccl on GPU)
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from reid.cli import train_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(train_main())
