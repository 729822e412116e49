"""Adversarial data cases (issue 28): a Market-like folder that is not the release, own-data CSV duplicates."""
from __future__ import annotations

from pathlib import Path

import pytest

from engine_helpers import config_file, tiny_config
from reid.cli import train_main

TERMS = [{"name": "softmax"}, {"name": "triplet"}]
TRAIN = {"epochs": 1, "iters_per_epoch": 1, "eval_every": 1, "projector_samples": 0}


def test_market_lookup_never_takes_the_synthetic_set_or_a_renamed_copy(tiny_market, tmp_path, capsys):
    # data.root=<folder holding only the synthetic set>: before, the '*arket*' glob trained and evaluated on it
    cfg = tiny_config(tmp_path / "run", tiny_market.parent, TERMS, {"classifier": "linear"}, train=TRAIN)
    assert train_main(["--config", str(config_file(cfg)), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"found {tiny_market}" in err and "data.dataset=synthetic" in err
    assert "Market-1501-v15.09.15" in err
    assert not (tmp_path / "run").exists()  # nothing written

    renamed = tmp_path / "data" / "market-copy"
    (renamed / "bounding_box_train").mkdir(parents=True)
    cfg = tiny_config(tmp_path / "run2", renamed.parent, TERMS, {"classifier": "linear"}, train=TRAIN)
    assert train_main(["--config", str(config_file(cfg)), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"found {renamed}, not named Market-1501-v15.09.15 (if it is the release: data.root={renamed})" in err
    assert not (tmp_path / "run2").exists()
    assert sorted(p.name for p in renamed.iterdir()) == ["bounding_box_train"]  # the data is untouched
