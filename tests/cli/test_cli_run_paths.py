"""Issue 29 item 15: `reid-test` from another folder reads the run's data, resolved against the folder the run
was made in, instead of looking (or generating the synthetic set) relative to the current folder."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engine_helpers import tiny_config
from reid import cli


@pytest.fixture(scope="module")
def relative_run(tiny_market, tmp_path_factory):
    """A run made from `origin` with relative data.root and output_dir, as the quick start makes them."""
    origin = tmp_path_factory.mktemp("origin")
    shutil.copytree(tiny_market, origin / "data")
    mp = pytest.MonkeyPatch()
    mp.chdir(origin)
    try:
        from reid.engine.trainer import Trainer

        cfg = tiny_config(Path("runs/rel"), Path("data"), [{"name": "softmax"}], {"classifier": "linear"},
                          train={"epochs": 1, "iters_per_epoch": 1, "eval_every": 0, "projector_samples": 0})
        assert cfg["data"]["root"] == "data" and cfg["output_dir"] == "runs/rel"
        trainer = Trainer(cfg, progress=False)
        trainer.fit()
        trainer.close()
    finally:
        mp.undo()
    return origin, origin / "runs" / "rel" / "checkpoint.pth"


def test_run_origin_is_the_checkpoint_folder_less_output_dir(tmp_path):
    ckpt = tmp_path / "work" / "runs" / "x" / "best.pth"
    assert cli.run_origin({"output_dir": "runs/x"}, str(ckpt)) == (tmp_path / "work").resolve()
    assert cli.run_origin({"output_dir": "./runs/x/"}, str(ckpt)) == (tmp_path / "work").resolve()
    assert cli.run_origin({"output_dir": "runs/y"}, str(ckpt)) is None  # moved out of its run folder
    assert cli.run_origin({"output_dir": str(tmp_path / "runs/x")}, str(ckpt)) is None
    assert cli.run_origin({"output_dir": "../x"}, str(ckpt)) is None


def test_test_from_another_folder_uses_the_runs_data(relative_run, tmp_path, monkeypatch, capsys):
    origin, checkpoint = relative_run
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code = cli.test_main(["--checkpoint", str(checkpoint), "--no-progress", "--output-dir", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr().err
    assert list(elsewhere.iterdir()) == []  # no dataset (nor cache) generated or written here
    assert json.loads((tmp_path / "out" / "results.json").read_text())["num_queries"] > 0
    assert cli.test_main(["--checkpoint", str(checkpoint), "--print-config"]) == 0
    assert f"root: {origin / 'data'}" in capsys.readouterr().out


def test_an_override_still_wins(relative_run, tmp_path, monkeypatch, capsys):
    _, checkpoint = relative_run
    monkeypatch.chdir(tmp_path)
    assert cli.test_main(["--checkpoint", str(checkpoint), "--print-config", "data.root=/some/where"]) == 0
    assert "root: /some/where" in capsys.readouterr().out


def test_moved_checkpoint_without_its_data_is_one_error_naming_both_places(relative_run, tmp_path, monkeypatch,
                                                                          capsys):
    _, checkpoint = relative_run
    moved = tmp_path / "shared" / "model.pth"
    moved.parent.mkdir()
    shutil.copy2(checkpoint, moved)
    monkeypatch.chdir(tmp_path)
    assert cli.test_main(["--checkpoint", str(moved), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "relative data.root 'data'" in err and str(tmp_path / "data") in err
    assert str(moved) in err and "data.root=" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared"]  # nothing generated here
