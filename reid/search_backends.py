"""Deprecated path: moved to reid.inference.search_backends (an alias that warns, kept one release)."""
from .inference import search_backends as _moved
from .utils.deprecation import moved_module

moved_module(__name__, _moved)
