"""Models: backbones, poolings and classifiers (registries), heads (BN neck), the HORDE branch and the re-ID model."""
from .backbones import BACKBONES, build_backbone
from .heads import (CLASSIFIERS, POOLINGS, BNNeck, GeM, GlobalPool, LargeMarginClassifier, build_classifier,
                    build_pooling)
from .horde import HighOrderPCA, HordeHead, horde_moments
from .large_margin import large_margin_logits
from .mlp import HRAMLEncoder
from .model import ReIDModel, build_model
from .weights import WeightsError, load_pretrained

__all__ = ["BACKBONES", "build_backbone", "POOLINGS", "CLASSIFIERS", "BNNeck", "GeM", "GlobalPool",
           "LargeMarginClassifier", "build_classifier", "build_pooling", "HighOrderPCA", "HordeHead", "horde_moments",
           "large_margin_logits", "HRAMLEncoder", "ReIDModel", "build_model", "WeightsError", "load_pretrained"]
