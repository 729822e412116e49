"""Files and folders the toolkit writes respect the umask (issue 29 item 14): under umask 022 a shared `runs/`
or dataset folder stays readable to every user (0644 files, 0755 folders), not owner-only as mkstemp makes them."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from engine_helpers import tiny_config


@pytest.fixture
def umask022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _modes(root: Path):
    """{relative path: mode} of everything under root."""
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in sorted(root.rglob("*"))}


def _not_public(modes):
    return {name: oct(mode) for name, mode in modes.items() if mode not in (0o644, 0o755)}


def test_synthetic_dataset_folder_is_readable_by_all(tmp_path, umask022):
    from reid.data.synthetic import generate

    folder = generate(tmp_path, num_ids=4, num_cams=2, seed=3, images_per_id_cam=1, junk_per_cam=1,
                      background_per_cam=1)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755  # mkdtemp made it 0700
    modes = _modes(folder)
    assert len(modes) > 10 and _not_public(modes) == {}


def test_run_folder_results_and_cache_files_are_readable_by_all(tiny_market, tmp_path, umask022):
    from reid.engine.tester import TestOptions, run_test
    from reid.engine.trainer import Trainer

    run = tmp_path / "run"
    cache = tmp_path / "cache"
    cfg = tiny_config(run, tiny_market, [{"name": "softmax"}], {"classifier": "linear"},
                      data={"pipeline": "tensor", "cache_dir": str(cache)},
                      train={"epochs": 1, "iters_per_epoch": 2, "eval_every": 1, "projector_samples": 0,
                             "ranklist_queries": 0})
    trainer = Trainer(cfg, progress=False)
    trainer.fit()
    trainer.close()
    run_test(cfg, str(run / "checkpoint.pth"), TestOptions(), progress=False)
    modes = _modes(run)
    assert {"checkpoint.pth", "best.pth", "config.yaml", "train.log", "test/results.json"} <= set(modes)
    assert any(name.startswith("results_epoch") for name in modes), sorted(modes)
    assert _not_public(modes) == {}
    cached = _modes(cache)
    assert any(n.endswith(".npy") for n in cached) and any(n.endswith(".bad.json") for n in cached)
    assert _not_public(cached) == {}
