"""Deprecated path: moved to reid.demo.output (an alias that warns, kept one release)."""
from .demo import output as _moved
from .utils.deprecation import moved_module

moved_module(__name__, _moved)
