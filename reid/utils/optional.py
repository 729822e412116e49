"""Optional dependencies (faiss, timm, numba, matplotlib), imported only when a feature that needs them is used,
each failing with one error that says which extra installs it (`pip install 'reid-toolkit[faiss]'`).

Here, below every layer, so that evaluation (faiss re-ranking) and inference (faiss search) share one import
without one of them importing the other, and so that every optional import of the package is listed in one table.
"""
from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType
from typing import Dict, Optional, Tuple, Type

from . import install_hint

# import name -> (the setup.py extra that installs it, the plain pip name) for the error messages; numba is a core
# dependency (no extra) that some platforms cannot install, so its absence falls back instead of failing
EXTRAS: Dict[str, Tuple[Optional[str], str]] = {
    "faiss": ("faiss", "faiss-cpu"),
    "timm": ("timm", "timm"),
    "numba": (None, "numba"),
    "matplotlib": ("plot", "matplotlib"),
}


def available(module: str) -> bool:
    """Whether `module` can be imported, without importing it (timm takes seconds to import)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module set to None in sys.modules
        return False


def missing_message(module: str, purpose: str, extra: Optional[str] = None) -> str:
    """'<purpose> needs <module>: <install hint> (or pip install <pip name>)', the one wording of every such error."""
    default_extra, pip_name = EXTRAS[module]
    extra = extra or default_extra
    if extra is None:
        return f"{purpose} needs {module}: pip install {pip_name}"
    return f"{purpose} needs {module}: {install_hint(extra)} (or pip install {pip_name})"


def require(module: str, purpose: str, extra: Optional[str] = None,
            error: Type[Exception] = ImportError) -> ModuleType:
    """The module, or `error` (ImportError; the model layer asks for ValueError, which its callers turn into a
    config error) naming `purpose` and the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise error(missing_message(module, purpose, extra)) from None


def optional_module(module: str) -> Optional[ModuleType]:
    """The module, or None where it is not installed (for code with a fallback, e.g. numba's compiled loops)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def import_faiss(purpose: str = "the faiss search backend") -> ModuleType:
    """The faiss module, or an ImportError naming `purpose` and the extra that installs faiss."""
    return require("faiss", purpose)


def faiss_available() -> bool:
    """Whether faiss can be imported (the faiss backends and faiss re-ranking are offered only then)."""
    try:
        import_faiss()
    except ImportError:
        return False
    return True
