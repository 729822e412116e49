"""reid: a person re-identification toolkit."""
import os as _os

# albumentations checks PyPI for updates at import; that must never happen at run time.
_os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from .version import __version__  # noqa: E402

__all__ = ["__version__"]
