"""Deprecated path: moved to reid.config.schema (an alias that warns, kept one release)."""
from .config import schema as _moved
from .utils.deprecation import moved_module

moved_module(__name__, _moved)
