"""Using a trained model: batched feature extraction and gallery search.

    extractor = reid.FeatureExtractor("runs/synthetic_quick/best.pth")
    gallery = extractor.extract(paths)                  # (N, D) L2-normalised float32
    idx, dist = reid.search(extractor.extract([query_path]), gallery, topk=10)
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..evaluation.rerank import K1, K2, LAMBDA

ImageInput = Union[str, Path, np.ndarray]


class FeatureExtractor:
    """Loads a model from a checkpoint (its embedded config) or a config, and embeds images.

    Images are file paths or RGB uint8 arrays (H, W, 3); they go through the config's test pipeline (resize +
    normalise). `flip=True` averages each embedding with that of the mirrored image.

    Args:
        checkpoint: a reid checkpoint (`checkpoint.pth` / `best.pth`); its embedded config is used unless `config`.
        config: a config file or mapping (alone: an untrained model of that config).
        device: "auto", "cpu", "cuda" or "cuda:N"; batch_size: images per forward pass.
        flip: average each embedding with the mirrored image's (the flip test).
    Raises:
        CheckpointError naming the file (missing, not a reid checkpoint, weights that do not fit or are not finite).
    """

    def __init__(self, checkpoint: Optional[Union[str, Path]] = None,
                 config: Optional[Union[str, Path, Mapping[str, Any]]] = None, device: str = "auto",
                 batch_size: int = 64, flip: bool = False) -> None:
        from ..builders import build_model_from_config, resolve_device
        from ..checkpoint import load_model_from_checkpoint
        from ..config.loading import load_config
        from ..data.transforms import build_transforms
        from ..models import heads  # noqa: F401 (declares model.pooling / model.classifier: checked when read)

        if checkpoint is None and config is None:
            raise ValueError("FeatureExtractor needs a checkpoint, a config, or both")
        self.device = resolve_device(device)
        if checkpoint is not None:
            self.model, cfg = load_model_from_checkpoint(checkpoint, config, self.device)
        else:  # a config alone: an untrained model (the classifier plays no part)
            cfg = dict(config) if isinstance(config, Mapping) else load_config(config)
            self.model = build_model_from_config(cfg, None).to(self.device).eval()
        self.config = cfg
        self.transform = build_transforms(cfg["transforms"], train=False)
        self.batch_size = int(batch_size)
        self.flip = flip
        self.checkpoint = str(checkpoint) if checkpoint is not None else None

    def _prepare(self, image: ImageInput) -> torch.Tensor:
        from ..data.loader import read_image

        array = read_image(str(image)) if not isinstance(image, np.ndarray) else image
        if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 image (H, W, 3), got shape {array.shape} dtype {array.dtype}")
        return self.transform(image=array)["image"]

    def extract(self, images: Sequence[ImageInput], progress: bool = False) -> torch.Tensor:
        """Embed images in batches; returns (N, D) L2-normalised float32 features on the CPU (the evaluation's
        extraction loop, `reid.evaluation.features.extract_features`)."""
        from tqdm import tqdm

        from ..evaluation.features import extract_features

        if len(images) == 0:
            raise ValueError("extract: no images given")
        starts = range(0, len(images), self.batch_size)
        batches = (torch.stack([self._prepare(im) for im in images[start:start + self.batch_size]])
                   for start in tqdm(starts, desc="extracting", disable=not progress, leave=False))
        return extract_features(self.model, batches, self.device, flip=self.flip, desc="extract")


def search(query_features: torch.Tensor, gallery_features: torch.Tensor, topk: int = 10, rerank: bool = False,
           k1: int = K1, k2: int = K2, lambda_value: float = LAMBDA, backend: str = "exact",
           index: Optional[Any] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Rank the gallery for each query: (indices (Q, k), distances (Q, k)), nearest first, ties by gallery index.

    Distances are squared Euclidean (float64, exact), or the k-reciprocal re-ranked distance (Zhong et al. 2017)
    with `rerank`. `backend`: "exact" (torch), "faiss" (exact flat index: the same neighbours), "faiss-ivf" or
    "faiss-hnsw" (approximate, for galleries of millions); `index` reuses a prebuilt
    `reid.inference.search_backends.FaissIndex`.

    Args:
        query_features, gallery_features: (Q, D) and (G, D) embeddings (finite; NaN rows are refused by name).
        topk: results per query (at most G); rerank, k1, k2, lambda_value: k-reciprocal re-ranking.
        backend: "exact", "faiss", "faiss-ivf" or "faiss-hnsw"; index: a prebuilt FaissIndex of the gallery.
    Returns:
        (indices, distances): int64 and float64 arrays of shape (Q, topk), nearest first.
    """
    from .search_backends import BACKENDS, FAISS_KINDS, FaissIndex, exact_search

    if backend not in BACKENDS:
        raise ValueError(f"search: backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    q = torch.as_tensor(query_features, dtype=torch.float32)
    g = torch.as_tensor(gallery_features, dtype=torch.float32)
    if q.ndim != 2 or g.ndim != 2 or q.shape[1] != g.shape[1]:
        raise ValueError(f"search: query features {tuple(q.shape)} and gallery features {tuple(g.shape)} must be "
                         "2-D with the same feature dimension")
    if len(g) == 0 or len(q) == 0:
        raise ValueError(f"search: empty query ({len(q)}) or gallery ({len(g)})")
    for name, features in (("query", q), ("gallery", g)):  # NaN distances sort anywhere: a silent wrong ranking
        rows = torch.nonzero(~torch.isfinite(features).all(dim=1)).flatten().tolist()
        if rows:
            raise ValueError(f"search: {name} features hold NaN or inf in {len(rows)} row(s) (first: "
                             f"{', '.join(map(str, rows[:5]))}); the model or its input is broken")
    topk = min(int(topk), len(g))
    if topk < 1:
        raise ValueError(f"search: topk must be at least 1, got {topk}")
    if rerank:
        if backend != "exact":
            raise ValueError(f"search: re-ranking needs every query-gallery distance; use backend 'exact', "
                             f"not {backend!r}")
        from ..evaluation.rerank import k_reciprocal_rerank

        k1_eff = min(k1, len(q) + len(g) - 1)
        if k1_eff != k1:
            warnings.warn(f"re-ranking: k1 lowered from {k1} to {k1_eff} for {len(q) + len(g)} images")
        dist = np.asarray(k_reciprocal_rerank(q, g, k1=k1_eff, k2=min(k2, k1_eff), lambda_value=lambda_value))
        order = np.argsort(dist, axis=1, kind="stable")[:, :topk]
        return order, np.take_along_axis(dist, order, axis=1)
    if backend == "exact":
        return exact_search(q, g, topk)
    if index is None:
        index = FaissIndex(g.numpy(), kind=FAISS_KINDS[backend])
    return index.search(q, topk)


def list_images(folder: Union[str, Path]) -> List[Path]:
    """Every image file under `folder` (`reid.data.image_io.IMAGE_EXTS`), recursively, in a stable order."""
    from ..data.image_io import IMAGE_EXTS

    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
