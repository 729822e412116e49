"""Deprecated path: moved to reid.utils.progress (an alias that warns, kept one release)."""
from .utils import progress as _moved
from .utils.deprecation import moved_module

moved_module(__name__, _moved)
