"""numba for the evaluator's compiled loops (rank counting, k-NN candidates), when it is installed.

Compiled code is cached on disk where numba finds a writable folder (next to the sources, or the user's cache);
elsewhere (a read-only install without a writable home) it is compiled once per process instead of failing at
import. The loops run on as many threads as torch is allowed (`torch.set_num_threads`), so a process limited to
one core for torch (e.g. one of several DDP ranks) is not given every core by numba.
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from ..utils.optional import optional_module

numba = optional_module("numba")  # None where it is not installed: the torch fallbacks run (forced in the tests)


def match_torch_threads() -> None:
    if numba is not None:
        numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))


def njit(**options: Any) -> Callable:
    """`numba.njit(cache=True, **options)`, or without the disk cache where no cache folder can be written."""
    def wrap(fn: Callable) -> Callable:
        try:
            return numba.njit(cache=True, **options)(fn)
        except RuntimeError:  # numba: "cannot cache function ...: no locator available"
            return numba.njit(**options)(fn)

    return wrap
