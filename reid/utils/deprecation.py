"""Old import paths kept one release after a move: the old module becomes the new one, with a warning.

A shim replaces itself in `sys.modules` by the module it moved to, so `reid.search_backends.exact_search is
reid.inference.search_backends.exact_search` and patching either name patches both.
"""
from __future__ import annotations

import sys
import warnings
from types import ModuleType

# the release after which the old paths are removed (said in every warning, so users know how long they have)
REMOVED_IN = "0.3"


def moved_module(old: str, new: ModuleType) -> ModuleType:
    """Make the module named `old` an alias of `new` and warn that the old path is deprecated."""
    warnings.warn(f"{old} has moved to {new.__name__}; import it from there ({old} is removed in {REMOVED_IN})",
                  DeprecationWarning, stacklevel=3)
    sys.modules[old] = new
    return new
