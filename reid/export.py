"""Deprecated path: moved to reid.inference.export (an alias that warns, kept one release)."""
from .inference import export as _moved
from .utils.deprecation import moved_module

moved_module(__name__, _moved)
