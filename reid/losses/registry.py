"""The loss registry (its own module so that every loss file can register without import cycles)."""
from ..registry import Registry

LOSSES = Registry("loss")
