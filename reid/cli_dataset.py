"""Deprecated path: moved to reid.cli.dataset (an alias that warns, kept one release)."""
from .cli import dataset as _moved
from .utils.deprecation import moved_module

moved_module(__name__, _moved)
