"""Deprecated path: moved to reid.demo.page (an alias that warns, kept one release)."""
from .demo import page as _moved
from .utils.deprecation import moved_module

moved_module(__name__, _moved)
