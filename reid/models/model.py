"""`ReIDModel`: backbone -> pooling -> optional FC embedding -> optional BN neck -> L2 norm, plus heads."""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Union

import torch
from torch import nn
from torch.nn import functional as F

from .backbones import build_backbone
from .horde import HordeHead
from .large_margin import LargeMarginClassifier

MODEL_KEYS = {"backbone", "pretrained", "last_stride", "pooling", "embedding_dim", "bn_neck", "num_classes",
              "classifier", "margin", "horde"}


class GeM(nn.Module):
    """Generalised-mean pooling with a learnable exponent p (p = 1: average, p -> inf: max)."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.tensor(float(p)))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp_min(self.eps).pow(self.p).mean(dim=(2, 3)).pow(1.0 / self.p)


class ReIDModel(nn.Module):
    def __init__(self, backbone: str = "resnet50", pretrained: str = "none", last_stride: int = 1,
                 pooling: str = "avg", embedding_dim: Optional[int] = None, bn_neck: bool = False,
                 num_classes: Optional[int] = None, classifier: Optional[str] = None, margin: int = 3,
                 horde: Optional[Mapping[str, Any]] = None) -> None:
        super().__init__()
        self.backbone = build_backbone(backbone, pretrained, last_stride=last_stride)
        channels = self.backbone.out_channels
        if pooling == "avg":
            self.pool: nn.Module = nn.AdaptiveAvgPool2d(1)
        elif pooling == "max":
            self.pool = nn.AdaptiveMaxPool2d(1)
        elif pooling == "gem":
            self.pool = GeM()
        else:
            raise ValueError(f"model.pooling: expected avg, max or gem, got {pooling!r}")
        self.fc = nn.Linear(channels, embedding_dim) if embedding_dim else None
        dim = embedding_dim or channels
        self.neck = None
        if bn_neck:
            self.neck = nn.BatchNorm1d(dim)
            self.neck.bias.requires_grad_(False)  # BNNeck: no shift, so the normalised feature stays centred
        self.classifier: Optional[nn.Module] = None
        if classifier is not None:
            if not num_classes:
                raise ValueError("model.classifier needs num_classes (the number of training identities)")
            if classifier == "linear":
                self.classifier = nn.Linear(dim, num_classes, bias=False)
            elif classifier == "large_margin":
                self.classifier = LargeMarginClassifier(dim, num_classes, margin)
            else:
                raise ValueError(f"model.classifier: expected null, linear or large_margin, got {classifier!r}")
        self.horde = HordeHead(channels, **dict(horde)) if horde else None
        self.test_high_order = False
        self.embedding_dim = dim

    def forward(self, x: torch.Tensor, labels: Optional[torch.Tensor] = None,
                return_dict: bool = False) -> Union[torch.Tensor, Dict[str, Any]]:
        fmap = self.backbone(x)
        pooled = self.pool(fmap).flatten(1)
        embedding = self.fc(pooled) if self.fc is not None else pooled
        neck = self.neck(embedding) if self.neck is not None else embedding
        normalized = F.normalize(neck, dim=1)
        if not self.training and not return_dict:
            if self.test_high_order and self.horde is not None:
                return F.normalize(torch.cat([normalized] + self.horde(fmap), dim=1), dim=1)
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
    unknown = sorted(set(cfg) - MODEL_KEYS)
    if unknown:
        raise ValueError(f"model config: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(MODEL_KEYS))}")
    return ReIDModel(**dict(cfg))
