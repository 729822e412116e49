"""Small helpers shared by every layer: atomic file writes that respect the umask, and install hints.

Light on purpose (standard library only), so any module, the command-line tools included, can import it.
"""
from __future__ import annotations

from .atomic import atomic_path, atomic_write, current_umask, make_public, public_mode

# The name on the package registry. The import name stays `reid`; the registry's `reid` is an unrelated project,
# so every hint names this one.
DISTRIBUTION = "reid-toolkit"


def install_hint(extra: str) -> str:
    """How to install an optional extra, from the registry and from a checkout (one line, for error messages)."""
    return f"pip install '{DISTRIBUTION}[{extra}]' (from a checkout: pip install -e \".[{extra}]\")"


__all__ = ["DISTRIBUTION", "atomic_path", "atomic_write", "current_umask", "install_hint", "make_public",
           "public_mode"]
