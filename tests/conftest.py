import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _deterministic_torch():
    """Tiny CPU tests: one thread keeps them fast on 2 cores and reproducible."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_market(tmp_path_factory):
    """A small generated dataset in the Market-1501 layout, shared by the engine/tool tests."""
    from engine_helpers import make_tiny_market

    return make_tiny_market(tmp_path_factory.mktemp("tiny_market"))
