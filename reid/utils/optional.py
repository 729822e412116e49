"""Optional dependencies, imported only when a feature that needs them is used, each failing with one error that
says which extra installs it (`pip install 'reid-toolkit[faiss]'`).

Here, below every layer, so that evaluation (faiss re-ranking) and inference (faiss search) share one import
without one of them importing the other.
"""
from __future__ import annotations

from types import ModuleType

from . import install_hint


def import_faiss(purpose: str = "the faiss search backend") -> ModuleType:
    """The faiss module, or an ImportError naming `purpose` and the extra that installs faiss."""
    try:
        import faiss
    except ImportError:
        raise ImportError(f"{purpose} needs faiss: {install_hint('faiss')} (or pip install faiss-cpu)") from None
    return faiss


def faiss_available() -> bool:
    """Whether faiss can be imported (the faiss backends and faiss re-ranking are offered only then)."""
    try:
        import_faiss()
    except ImportError:
        return False
    return True
