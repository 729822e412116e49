"""tools/train.py and tools/test.py end to end, TensorBoard contents, and the user-facing error paths."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine_helpers import config_file, tiny_config
from reid import cli
from reid.builders import MissingDatasetError
from reid.checkpoint import CheckpointError
from reid.engine.trainer import Trainer

REPO = Path(__file__).resolve().parents[2]
TERMS = [{"name": "softmax"}, {"name": "triplet"}]
MODEL = {"classifier": "linear"}


@pytest.fixture(scope="module")
def trained_run(tiny_market, tmp_path_factory):
    """A run trained through the train CLI (2 epochs, evaluation after each)."""
    run = tmp_path_factory.mktemp("cli") / "run"
    cfg = tiny_config(run, tiny_market, TERMS, MODEL)
    assert cli.train_main(["--config", str(config_file(cfg)), "--no-progress"]) == 0
    return cfg, run


def test_train_cli_writes_run_folder(trained_run, capsys):
    _, run = trained_run
    for name in ("config.yaml", "checkpoint.pth", "best.pth", "train.log", "results_epoch2.json"):
        assert (run / name).is_file(), name
    per_epoch = [json.loads((run / f"results_epoch{e}.json").read_text())["mAP"] for e in (1, 2)]
    best = torch.load(run / "best.pth", weights_only=True)  # the better of the two evaluations
    assert (best["best_metric"], best["best_epoch"]) == (max(per_epoch), 1 + per_epoch.index(max(per_epoch)))
    log = (run / "train.log").read_text()
    assert "epoch 2" in log and "mAP" in log


def test_tensorboard_has_the_expected_tags(trained_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, run = trained_run
    event_dirs = {p.parent for p in run.rglob("events.out.tfevents.*")}
    assert event_dirs
    scalars, images = set(), set()
    for d in event_dirs:
        acc = EventAccumulator(str(d), size_guidance={"scalars": 0, "images": 0})
        acc.Reload()
        scalars |= set(acc.Tags()["scalars"])
        images |= set(acc.Tags()["images"])
    for tag in ("loss/softmax", "loss/triplet", "loss/total", "lr", "epoch_loss/total", "eval/mAP", "eval/rank1",
                "eval/mINP"):
        assert tag in scalars, (tag, sorted(scalars))
    assert "eval/ranklist" in images
    assert list(run.rglob("projector_config.pbtxt")), "embedding projector missing"


def test_test_cli_prints_and_writes_results(trained_run, tmp_path, capsys):
    cfg, run = trained_run
    out = tmp_path / "test"
    code = cli.test_main(["--config", str(config_file(cfg)), "--checkpoint", str(run / "best.pth"),
                      "--output-dir", str(out), "--ap", "official", "--visualize", "2", "--flip"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "mAP" in printed and "Rank-1" in printed.replace("rank-1", "Rank-1")
    results = json.loads((out / "results.json").read_text())
    assert f"{results['mAP'] * 100:.2f}%" in printed  # the table shows the figure the results file holds
    assert len(list((out / "ranklists").glob("*.png"))) == 2
    # without flags reid-test evaluates as the training run did: the figure best.pth was kept for
    plain = tmp_path / "plain"
    assert cli.test_main(["--config", str(config_file(cfg)), "--checkpoint", str(run / "best.pth"),
                          "--output-dir", str(plain), "--no-progress"]) == 0
    again = json.loads((plain / "results.json").read_text())
    best = torch.load(run / "best.pth", weights_only=True)
    assert again["mAP"] == pytest.approx(best["best_metric"], abs=1e-9)
    assert again["num_queries"] == results["num_queries"]  # the same queries, whatever the options


@pytest.mark.parametrize("options", [["--rerank", "--k1", "6", "--k2", "3"], ["--multi-query", "mean"]],
                         ids=["rerank", "multi_query"])
def test_test_cli_options(options, trained_run, tmp_path):
    cfg, run = trained_run
    code = cli.test_main(["--config", str(config_file(cfg)), "--checkpoint", str(run / "best.pth"),
                      "--output-dir", str(tmp_path)] + options)
    assert code == 0
    assert json.loads((tmp_path / "results.json").read_text())["num_queries"] > 0


def test_tools_scripts_run_as_subprocess(trained_run, tmp_path):
    cfg, run = trained_run
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "test.py"), "--config", str(config_file(cfg)),
                           "--checkpoint", str(run / "checkpoint.pth"), "--output-dir", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "mAP" in proc.stdout


# ---------------------------------------------------------------- bad input
def test_missing_dataset_points_to_readme(tmp_path):
    cfg = tiny_config(tmp_path / "run", tmp_path / "nowhere", TERMS, MODEL)
    with pytest.raises(MissingDatasetError, match="datasets/README.md"):
        Trainer(cfg, progress=False)


def test_train_cli_reports_bad_config_in_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  lrr: 0.1\n")
    assert cli.train_main(["--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "optim.lrr" in err and "optim.lr" in err and "Traceback" not in err


def test_test_cli_missing_checkpoint(trained_run, capsys):
    cfg, _ = trained_run
    assert cli.test_main(["--config", str(config_file(cfg)), "--checkpoint", "/nope/model.pth"]) == 2
    assert "/nope/model.pth" in capsys.readouterr().err


def test_incompatible_checkpoint_names_keys(trained_run, tmp_path, capsys):
    cfg, run = trained_run
    other = tiny_config(tmp_path / "other", cfg["data"]["root"], TERMS, {"classifier": "linear", "embedding_dim": 48})
    assert cli.test_main(["--config", str(config_file(other)), "--checkpoint", str(run / "best.pth")]) == 2
    err = capsys.readouterr().err
    assert "shape mismatches" in err and "fc.weight" in err


def test_corrupt_checkpoint_is_reported(trained_run, tmp_path, capsys):
    cfg, _ = trained_run
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"not a checkpoint")
    assert cli.test_main(["--config", str(config_file(cfg)), "--checkpoint", str(broken)]) == 2
    assert "broken.pth" in capsys.readouterr().err


def test_teacher_of_another_architecture_is_refused(trained_run, tmp_path):
    cfg, run = trained_run
    teacher_cfg = tiny_config(tmp_path / "teacher", cfg["data"]["root"], TERMS,
                              {"classifier": "linear", "backbone": "nin_bn"})
    student = tiny_config(tmp_path / "student", cfg["data"]["root"], [{"name": "darkrank", "mode": "hard"}],
                          distill={"teacher_config": str(config_file(teacher_cfg)),
                                   "teacher_checkpoint": str(run / "best.pth")})
    with pytest.raises(CheckpointError, match="nin_bn"):
        Trainer(student, progress=False)
