"""Models: backbones (registry), heads (pooling, embedding, BN neck, classifiers, HORDE), the re-ID model."""
from .backbones import BACKBONES, build_backbone
from .horde import HordeHead, horde_moments
from .large_margin import LargeMarginClassifier, large_margin_logits
from .mlp import HRAMLEncoder
from .model import ReIDModel, build_model

__all__ = ["BACKBONES", "build_backbone", "HordeHead", "horde_moments", "LargeMarginClassifier",
           "large_margin_logits", "HRAMLEncoder", "ReIDModel", "build_model"]
