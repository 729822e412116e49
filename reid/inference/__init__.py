"""The application API: embed images with a trained checkpoint (FeatureExtractor), rank a gallery for queries
(search, with the exact and faiss backends) and export a checkpoint to ONNX.

The one rule of this package: it never imports reid.engine (models come through reid.builders and
reid.checkpoint), so an application needs no training code. Public names are re-exported here:
`from reid.inference import FeatureExtractor, search`.
"""
from __future__ import annotations

from .export import (ExportError, describe, export_onnx, preprocess, preprocessing_spec, read_preprocessing,
                     verify_onnx)
from .extractor import FeatureExtractor, list_images, search
from .search_backends import (BACKENDS, FAISS_KINDS, FaissIndex, exact_search, faiss_available, import_faiss,
                              refine)

__all__ = ["BACKENDS", "ExportError", "FAISS_KINDS", "FaissIndex", "FeatureExtractor", "describe", "exact_search",
           "export_onnx", "faiss_available", "import_faiss", "list_images", "preprocess", "preprocessing_spec",
           "read_preprocessing", "refine", "search", "verify_onnx"]
