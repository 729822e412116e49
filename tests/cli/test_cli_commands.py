"""tools/evaluate.py, tools/dataset_summary.py and tools/test.py end to end; the command-line conventions of every
command: help text, --no-progress, flags after the overrides, reid-test's config handling and --json checks."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from reid.evaluation import evaluate

REPO = Path(__file__).resolve().parents[2]


def run(script, *args):
    return subprocess.run([sys.executable, str(REPO / "tools" / script), *map(str, args)], capture_output=True,
                          text=True, timeout=300, env={"NO_ALBUMENTATIONS_UPDATE": "1", "PATH": "/usr/bin:/bin"})


def test_evaluate_cli_matches_the_function(tmp_path):
    rng = np.random.default_rng(0)
    q = dict(features=rng.normal(size=(10, 4)).astype(np.float32), pids=rng.integers(1, 4, 10), camids=np.zeros(10))
    g = dict(features=rng.normal(size=(30, 4)).astype(np.float32), pids=rng.integers(1, 4, 30), camids=np.ones(30))
    d = dict(features=rng.normal(size=(5, 4)).astype(np.float32))
    for name, data in (("q", q), ("g", g), ("d", d)):
        np.savez(tmp_path / f"{name}.npz", **data)
    proc = run("evaluate.py", "--query", tmp_path / "q.npz", "--gallery", tmp_path / "g.npz", "--distractors",
               tmp_path / "d.npz", "--ap", "official", "--json", tmp_path / "out.json")
    assert proc.returncode == 0, proc.stderr
    assert "mAP" in proc.stdout
    got = json.loads((tmp_path / "out.json").read_text())
    import torch

    expect = evaluate(torch.from_numpy(q["features"]), torch.from_numpy(np.concatenate([g["features"], d["features"]])),
                      q["pids"], np.concatenate([g["pids"], [-2] * 5]), q["camids"], np.concatenate([g["camids"],
                                                                                                     [-1] * 5]),
                      ap="official")
    assert got["mAP"] == pytest.approx(expect.mAP) and got["gallery_size"] == 35
    np.savez(tmp_path / "bad.npz", feats=np.zeros((2, 2)))
    bad = run("evaluate.py", "--query", tmp_path / "bad.npz", "--gallery", tmp_path / "g.npz")
    assert bad.returncode != 0 and "no 'features' array" in bad.stderr


def test_dataset_summary_cli(tiny_market, tmp_path):
    proc = run("dataset_summary.py", "--dataset", "market1501", "--root", tiny_market, "--json", tmp_path / "c.json")
    assert proc.returncode == 0, proc.stderr
    counts = json.loads((tmp_path / "c.json").read_text())
    assert counts["train"]["ids"] == 8 and counts["gallery"]["junk"] > 0 and "gallery" in proc.stdout
    missing = run("dataset_summary.py", "--dataset", "market1501", "--root", tmp_path / "none")
    assert missing.returncode == 2 and "datasets/README.md" in missing.stderr


# ---------------------------------------------------------------- flags
def _parsers():
    from reid import cli
    from reid.cli.export import build_parser as export_parser

    return {"reid-train": cli.build_train_parser(), "reid-test": cli.build_test_parser(),
            "reid-demo": cli.build_demo_parser(), "reid-export": export_parser()}


def test_every_flag_has_help_and_every_tool_has_no_progress():
    for tool, parser in _parsers().items():
        options = [a for a in parser._actions if a.dest != "help"]
        missing = [a.option_strings or a.dest for a in options if not (a.help or "").strip()]
        assert not missing, f"{tool}: flags without help: {missing}"
        assert any("--no-progress" in a.option_strings for a in options), tool


def test_flags_may_follow_the_overrides(capsys):
    """Issue 28.20: `... optim.lr=0.01 --print-config` gave "unrecognized arguments: optim.lr=0.01"."""
    from reid import cli

    assert cli.train_main(["--config", "sn/market1501", "optim.lr=0.01", "--print-config", "train.epochs=3"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["optim"]["lr"] == 0.01 and cfg["train"]["epochs"] == 3
    args = cli.commands.build_test_parser().parse_intermixed_args(
        ["--checkpoint", "x.pth", "test.metric=cosine", "--visualize", "3", "test.k1=5"])
    assert args.overrides == ["test.metric=cosine", "test.k1=5"] and args.visualize == 3


# ---------------------------------------------------------------- reid-test: the config's test section
def _test_config(capsys, *args):
    from reid import cli

    assert cli.test_main(list(map(str, args)) + ["--print-config"]) == 0
    return yaml.safe_load(capsys.readouterr().out)


def test_test_takes_the_checkpoint_config_and_flags_override_only_when_given(tiny_checkpoint, capsys):
    stored = torch.load(tiny_checkpoint, weights_only=True)["config"]
    cfg = _test_config(capsys, "--checkpoint", tiny_checkpoint)
    assert cfg["model"] == stored["model"] and cfg["test"]["rerank"] is False and cfg["test"]["k1"] == 20
    cfg = _test_config(capsys, "--checkpoint", tiny_checkpoint, "test.rerank=true", "test.k1=5",
                       "test.lambda_value=0.5")
    assert cfg["test"]["rerank"] is True and (cfg["test"]["k1"], cfg["test"]["k2"]) == (5, 6)
    assert cfg["test"]["lambda_value"] == 0.5
    cfg = _test_config(capsys, "--checkpoint", tiny_checkpoint, "test.rerank=true", "test.k1=5", "--k1", "7",
                       "--no-rerank", "--ap", "official", "--flip")
    assert cfg["test"]["rerank"] is False and cfg["test"]["k1"] == 7 and cfg["test"]["ap"] == "official"
    assert cfg["train"]["flip_test"] is True


def test_test_reads_rerank_from_the_config(tiny_checkpoint, tmp_path):
    from reid import cli

    def mAP(*args):
        out = tmp_path / str(len(list(tmp_path.iterdir())))
        assert cli.test_main(["--checkpoint", str(tiny_checkpoint), "--output-dir", str(out), "--no-progress",
                              *args]) == 0
        return json.loads((out / "results.json").read_text())["mAP"]

    plain = mAP()
    from_flags = mAP("--rerank", "--k1", "6", "--k2", "3", "--lambda", "0.1")
    from_config = mAP("test.rerank=true", "test.k1=6", "test.k2=3", "test.lambda_value=0.1")
    assert from_config == pytest.approx(from_flags) and from_flags != pytest.approx(plain)


def test_high_order_is_read_and_refused_without_horde(tiny_checkpoint, tiny_market, tmp_path, capsys, monkeypatch):
    from engine_helpers import tiny_config
    from reid import cli
    from reid.engine import tester
    from reid.builders import build_model_from_config

    assert cli.test_main(["--checkpoint", str(tiny_checkpoint), "test.high_order=true"]) == 2
    assert "test.high_order is true" in capsys.readouterr().err
    horde = {"orders": 3, "projection_dim": 16, "embedding_dim": 8}
    cfg = tiny_config(tmp_path / "horde", tiny_market, [{"name": "triplet"}], {"horde": horde})
    ckpt = tmp_path / "horde.pth"
    torch.save({"model": build_model_from_config(cfg, None).state_dict(), "config": cfg, "num_classes": None}, ckpt)
    dims = []
    real = tester.evaluate_features
    monkeypatch.setattr(tester, "evaluate_features", lambda q, g, *a, **k: dims.append(q.features.shape[1]) or
                        real(q, g, *a, **k))
    for option in ([], ["--high-order"]):
        assert cli.test_main(["--checkpoint", str(ckpt), "--output-dir", str(tmp_path / "out"), *option]) == 0
    assert dims == [32, 32 + 2 * 8]  # order 1 alone, then orders 1, 2 and 3 concatenated


def test_test_tool_output_has_no_carriage_returns_when_redirected(tiny_checkpoint, tmp_path):
    proc = run("test.py", "--checkpoint", tiny_checkpoint, "--output-dir", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stdout + proc.stderr
    # the results table starts stdout on a line of its own (not after a run of bar refreshes)
    header = proc.stdout.splitlines()[0].split()
    assert header[0] == "Rank-1" and "mAP" in header, proc.stdout


def test_test_json_folder_or_unwritable_path_refused_before_evaluating(tiny_checkpoint, tmp_path, capsys):
    from reid import cli

    folder = tmp_path / "a_folder"
    folder.mkdir()
    assert cli.test_main(["--checkpoint", str(tiny_checkpoint), "--json", str(folder), "--no-progress",
                          "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a folder" in err
    assert not (tmp_path / "out").exists()  # nothing evaluated, nothing written
    assert list(folder.iterdir()) == [] and not list(tmp_path.glob(".results*"))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert cli.test_main(["--checkpoint", str(tiny_checkpoint), "--json", str(blocker / "r.json"),
                          "--no-progress"]) == 2
    assert "cannot write into" in capsys.readouterr().err
