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


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_market, tmp_path_factory):
    """A checkpoint of the small backbone trained for a couple of steps on `tiny_market`."""
    from engine_helpers import tiny_config
    from reid.engine.trainer import Trainer

    run = tmp_path_factory.mktemp("tiny_checkpoint") / "run"
    cfg = tiny_config(run, tiny_market, [{"name": "softmax"}, {"name": "triplet"}], {"classifier": "linear"},
                      train={"epochs": 1, "iters_per_epoch": 2, "eval_every": 0, "projector_samples": 0})
    trainer = Trainer(cfg, progress=False)
    trainer.fit()
    trainer.close()
    return run / "checkpoint.pth"
