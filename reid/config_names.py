"""Deprecated path: moved to reid.config.names (an alias that warns, kept one release)."""
from .config import names as _moved
from .utils.deprecation import moved_module

moved_module(__name__, _moved)
