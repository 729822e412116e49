"""Deprecated path: moved to reid.cli.evaluate (an alias that warns, kept one release)."""
from .cli import evaluate as _moved
from .utils.deprecation import moved_module

moved_module(__name__, _moved)
