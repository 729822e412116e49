"""numba for the evaluator's compiled loops (rank counting, k-NN candidates), when it is installed.

The loops run on as many threads as torch is allowed (`torch.set_num_threads`), so a process limited to one core for
torch (e.g. one of several DDP ranks) is not given every core by numba.
"""
from __future__ import annotations

import torch

try:
    import numba
except ImportError:  # pragma: no cover - exercised by forcing the fallbacks in the tests
    numba = None


def match_torch_threads() -> None:
    if numba is not None:
        numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))
