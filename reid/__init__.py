"""reid: a person re-identification toolkit."""
import os as _os

# albumentations checks PyPI for updates at import; that must never happen at run time.
_os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from .version import __version__  # noqa: E402


def __getattr__(name: str):
    # Lazy: `import reid` stays light (no torch import) until the inference API is used.
    if name in ("FeatureExtractor", "search"):
        from . import inference

        return getattr(inference, name)
    raise AttributeError(f"module 'reid' has no attribute '{name}'")


__all__ = ["__version__", "FeatureExtractor", "search"]
