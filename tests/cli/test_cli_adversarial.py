"""Adversarial command lines (issue 28): an empty --config, outputs that would replace an input, a checkpoint or a
file the tool did not write."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from reid import cli


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("value", ["", "  "])
def test_empty_config_is_refused_and_nothing_is_written(value, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # before: the default job ran here, writing datasets/ and runs/
    assert cli.train_main(["--config", value, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--config {value!r}: empty" in err and "omit --config" in err
    assert cli.test_main(["--config", value, "--checkpoint", "x.pth"]) == 2
    assert f"--config {value!r}: empty" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_test_json_never_replaces_the_checkpoint_or_a_foreign_file(tiny_checkpoint, tmp_path, capsys):
    checkpoint = tmp_path / "run" / "checkpoint.pth"
    checkpoint.parent.mkdir()
    shutil.copy(tiny_checkpoint, checkpoint)
    other = tmp_path / "other.pth"  # another run's checkpoint
    shutil.copy(tiny_checkpoint, other)
    notes = tmp_path / "notes.json"
    notes.write_text('{"mine": 1}')
    before = {p: _digest(p) for p in (checkpoint, other, notes)}
    base = ["--checkpoint", str(checkpoint), "--no-progress", "--output-dir", str(tmp_path / "out")]
    for target, message in ((checkpoint, "is the input --checkpoint of this command"),
                            (other, "is a checkpoint: not replaced"),
                            (notes, "exists and was not written by this tool")):
        assert cli.test_main([*base, "--json", str(target)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"--json {target} {message}" in err
    # --force never makes an input writable
    assert cli.test_main([*base, "--json", str(checkpoint), "--force"]) == 2
    assert "is the input --checkpoint" in capsys.readouterr().err
    assert {p: _digest(p) for p in before} == before  # nothing replaced
    assert not (tmp_path / "out").exists()  # refused before the evaluation

    results = tmp_path / "results.json"
    assert cli.test_main([*base, "--json", str(results)]) == 0
    assert cli.test_main([*base, "--json", str(results)]) == 0  # its own results file: a re-run updates it
    assert "mAP" in json.loads(results.read_text())
    assert cli.test_main([*base, "--json", str(notes), "--force"]) == 0  # on purpose
    assert "mAP" in json.loads(notes.read_text())
    assert _digest(checkpoint) == before[checkpoint]


def _run(script, *args):
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    return subprocess.run([sys.executable, str(repo / "tools" / script), *map(str, args)], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"})


def test_evaluate_json_never_replaces_its_features(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    for name, n in (("q", 6), ("g", 12)):
        np.savez(tmp_path / f"{name}.npz", features=rng.normal(size=(n, 4)).astype(np.float32),
                 pids=rng.integers(1, 3, n), camids=np.full(n, 0 if name == "q" else 1))
    before = _digest(tmp_path / "q.npz")
    proc = _run("evaluate.py", "--query", tmp_path / "q.npz", "--gallery", tmp_path / "g.npz",
                "--json", tmp_path / "q.npz", "--force")
    assert proc.returncode == 2 and f"--json {tmp_path / 'q.npz'} is the input --query" in proc.stderr
    assert _digest(tmp_path / "q.npz") == before
    ok = _run("evaluate.py", "--query", tmp_path / "q.npz", "--gallery", tmp_path / "g.npz", "--json",
              tmp_path / "r.json")
    assert ok.returncode == 0 and "mAP" in json.loads((tmp_path / "r.json").read_text()), ok.stderr


def test_export_never_replaces_a_checkpoint_and_reports_unwritable_outputs(tiny_checkpoint, tmp_path):
    pytest.importorskip("onnx")
    checkpoint = tmp_path / "run" / "checkpoint.pth"
    checkpoint.parent.mkdir()
    shutil.copy(tiny_checkpoint, checkpoint)
    other = tmp_path / "other" / "checkpoint.pth"  # another run's checkpoint
    other.parent.mkdir()
    shutil.copy(tiny_checkpoint, other)
    before = {p: _digest(p) for p in (checkpoint, other)}
    cases = [((checkpoint,), "is the input --checkpoint of this command"),
             ((checkpoint, "--force"), "is the input --checkpoint"),
             ((other,), "is a checkpoint: not replaced"),
             ((tmp_path,), "is a folder"),
             ((Path("/proc/reid-model.onnx"),), "cannot write --output /proc/reid-model.onnx")]
    for args, message in cases:
        proc = _run("export.py", "--checkpoint", checkpoint, "--output", *args)
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert {p: _digest(p) for p in before} == before
    assert sorted(os.listdir(tmp_path)) == ["other", "run"]  # no temporary export left anywhere
    assert sorted(os.listdir(checkpoint.parent)) == ["checkpoint.pth"]
