"""`ReIDModel`: backbone -> pooling -> optional FC embedding -> optional BN neck -> L2 norm, plus optional identity
classifier and HORDE branch; `build_model(cfg)` builds it from the `model` config section."""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Union

import torch
from torch import nn
from torch.nn import functional as F

from .backbones import build_backbone
from .heads import BNNeck, GeM, LargeMarginClassifier, build_classifier, build_pooling
from .horde import HordeHead

__all__ = ["MODEL_KEYS", "ReIDModel", "build_model", "GeM"]

MODEL_KEYS = ("backbone", "pretrained", "last_stride", "last_stride_mode", "head_conv", "pooling", "embedding_dim",
              "bn_neck", "num_classes", "classifier", "margin", "horde")


class ReIDModel(nn.Module):
    """The re-ID network.

    Training mode, `model(x, labels)` returns a dict: `feature_map` (B, C, h, w), `pooled` (B, C), `embedding`
    (B, D; FC output before normalisation, = pooled without FC), `normalized` (L2-normalised BN-neck output, or
    embedding without neck), `logits` (B, num_classes; classifier input = BN-neck output or embedding; the
    large-margin head applies its margin when labels are given) and `horde` (list of per-order normalised
    embeddings) when those heads exist. Eval mode returns `normalized` only, or with `test_high_order = True` the
    L2-normalised concatenation of order 1 and the HORDE orders; `return_dict=True` gives the dict in eval mode too
    (teachers, measurements), with plain logits.
    """

    def __init__(self, backbone: str = "resnet50", pretrained: str = "none", last_stride: Optional[int] = None,
                 pooling: str = "avg", embedding_dim: Optional[int] = None, bn_neck: bool = False,
                 num_classes: Optional[int] = None, classifier: Optional[str] = None, margin: int = 3,
                 horde: Optional[Mapping[str, Any]] = None, last_stride_mode: Optional[str] = None,
                 head_conv: Optional[bool] = None) -> None:
        super().__init__()
        kwargs: Dict[str, Any] = {} if last_stride is None else {"last_stride": last_stride}
        # backbone options that only some backbones take: passed when set, so the others keep their signature
        for key, value in (("last_stride_mode", last_stride_mode), ("head_conv", head_conv)):
            if value is not None:
                kwargs[key] = value
        self.backbone = build_backbone(backbone, pretrained, **kwargs)
        channels = int(self.backbone.out_channels)
        self.pool = build_pooling(pooling)
        if embedding_dim is not None and (not isinstance(embedding_dim, int) or embedding_dim < 1):
            raise ValueError(f"model.embedding_dim: expected null or a positive integer, got {embedding_dim!r}")
        self.fc = nn.Linear(channels, embedding_dim) if embedding_dim else None
        dim = embedding_dim or channels
        self.neck = BNNeck(dim) if bn_neck else None
        self.classifier = build_classifier(classifier, dim, num_classes, margin) if classifier is not None else None
        self.horde = HordeHead.from_config(channels, horde) if horde else None
        self.test_high_order = False
        self.embedding_dim = dim
        self.out_channels = channels

    def forward(self, x: torch.Tensor, labels: Optional[torch.Tensor] = None,
                return_dict: bool = False) -> Union[torch.Tensor, Dict[str, Any]]:
        fmap = self.backbone(x)
        pooled = self.pool(fmap)
        embedding = self.fc(pooled) if self.fc is not None else pooled
        neck = self.neck(embedding) if self.neck is not None else embedding
        normalized = F.normalize(neck, dim=1)
        if not self.training and not return_dict:
            if self.test_high_order and self.horde is not None:
                return F.normalize(torch.cat([normalized, *self.horde(fmap)], dim=1), dim=1)
            return normalized
        out: Dict[str, Any] = {"feature_map": fmap, "pooled": pooled, "embedding": embedding,
                               "normalized": normalized}
        if self.classifier is not None:
            if isinstance(self.classifier, LargeMarginClassifier):
                out["logits"] = self.classifier(neck, labels if self.training else None)
            else:
                out["logits"] = self.classifier(neck)
        if self.horde is not None:
            out["horde"] = self.horde(fmap)
        return out


def build_model(cfg: Mapping[str, Any]) -> ReIDModel:
    """A `ReIDModel` from a `model` config dict (keys: MODEL_KEYS; `horde` a dict of HORDE_KEYS or null)."""
    if not isinstance(cfg, Mapping):
        raise TypeError(f"model config: expected a mapping, got {type(cfg).__name__}")
    unknown = sorted(set(cfg) - set(MODEL_KEYS))
    if unknown:
        raise ValueError(f"model config: unknown key(s) {', '.join(unknown)}; valid: {', '.join(MODEL_KEYS)}")
    return ReIDModel(**dict(cfg))
