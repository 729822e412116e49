"""The run's data path from its config: tensor pipeline with the cache, the budget fallback, cache_dir=off."""
from __future__ import annotations

import os

from engine_helpers import tiny_config
from reid.engine.trainer import Trainer

TERMS = [{"name": "softmax"}, {"name": "triplet"}]
MODEL = {"classifier": "linear"}
TRAIN = {"epochs": 1, "iters_per_epoch": 2, "eval_every": 1, "projector_samples": 0, "ranklist_queries": 0}


def test_tensor_pipeline_decodes_every_split_into_the_cache(tiny_market, tmp_path):
    cfg = tiny_config(tmp_path / "run", tiny_market, TERMS, MODEL, train=TRAIN,
                      data={"cache_dir": str(tmp_path / "cache")})
    trainer = Trainer(cfg, progress=False)
    assert trainer.loader.pipeline == "tensor"
    assert set(trainer.data.decoded) == {"train", "query", "gallery"}
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 3
    assert trainer.fit() is not None


def test_over_budget_reads_per_file_and_cache_off_writes_nothing(tiny_market, tmp_path):
    over = tiny_config(tmp_path / "over", tiny_market, TERMS, MODEL, train=TRAIN,
                       data={"cache_dir": str(tmp_path / "cache"), "cache_max_gb": 1e-9})
    trainer = Trainer(over, progress=False)
    assert trainer.loader.pipeline == "albumentations" and trainer.data.decoded == {}
    assert not (tmp_path / "cache").exists()
    assert trainer.fit() is not None
    off = tiny_config(tmp_path / "off", tiny_market, TERMS, MODEL, train=TRAIN, data={"cache_dir": "off"})
    trainer = Trainer(off, progress=False)
    assert trainer.loader.pipeline == "tensor" and all(d.file is None for d in trainer.data.decoded.values())
    assert not list(tiny_market.rglob("*.npy.tmp-*"))


def test_cache_dir_that_is_a_file_or_unwritable_is_one_error_naming_the_key(tiny_market, tmp_path, capsys):
    """Issue 28 item 15: refused before anything is decoded, the file and the data left as they were."""
    from engine_helpers import config_file
    from reid.cli import train_main

    taken = tmp_path / "notes.txt"
    taken.write_text("the user's file")
    before = sorted(p.name for p in tiny_market.rglob("*"))
    for cache_dir, problem in ((taken, "is a file, not a folder"), ("/proc/reid-cache", "cannot be written (")):
        run = tmp_path / f"run-{len(problem)}"
        cfg = tiny_config(run, tiny_market, TERMS, MODEL, train=TRAIN, data={"cache_dir": str(cache_dir)})
        assert train_main(["--config", str(config_file(cfg)), "--no-progress"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: data.cache_dir={cache_dir}: {problem}") and "\n" not in err, err
        assert "data.cache_dir=off" in err
        assert os.listdir(run) == ["train.log"] and "data.cache_dir=" in (run / "train.log").read_text()
    assert taken.read_text() == "the user's file" and sorted(p.name for p in tiny_market.rglob("*")) == before
