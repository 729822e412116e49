"""Adversarial training cases (issue 28): --overwrite leaves only the new run, one training per output_dir (a lock,
stale ones ignored), SIGTERM stops like Ctrl-C (checkpoint, exit 143), contradictory or empty options refused."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from engine_helpers import config_file, tiny_config
from reid.cli import train_main
from reid.engine.run_folder import LOCK_NAME, RunLock
from reid.engine.trainer import Trainer

TERMS = [{"name": "softmax"}, {"name": "triplet"}]
MODEL = {"classifier": "linear"}
TRAIN = {"epochs": 1, "iters_per_epoch": 2, "eval_every": 0, "projector_samples": 0}
TOOL = Path(__file__).resolve().parents[2] / "tools" / "train.py"


def _digests(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _leftovers(folder: Path) -> list:
    """Lock and temporary files that a finished or refused run must not leave behind."""
    return sorted(p.name for p in folder.iterdir() if p.name == LOCK_NAME or ".tmp" in p.name)


def test_overwrite_leaves_only_the_new_run(tiny_market, tmp_path, capsys):
    run = tmp_path / "run"
    old = tiny_config(run, tiny_market, TERMS, MODEL, train={**TRAIN, "epochs": 2, "eval_every": 1})
    assert train_main(["--config", str(config_file(old)), "--no-progress"]) == 0
    assert {"best.pth", "results_epoch1.json", "results_epoch2.json", "train.log"} <= set(os.listdir(run))
    (run / "notes.txt").write_text("mine")  # not a run file: kept
    new = tiny_config(run, tiny_market, TERMS, MODEL, train=TRAIN)  # no evaluation: writes no best.pth
    assert train_main(["--config", str(config_file(new)), "--no-progress", "--overwrite"]) == 0
    names = set(os.listdir(run))
    assert not names & {"best.pth", "results_epoch1.json", "results_epoch2.json"}, names
    assert {"checkpoint.pth", "config.yaml", "train.log", "notes.txt"} <= names
    log = (run / "train.log").read_text()
    assert "evaluation after epoch" not in log  # the old run's log is gone, not appended to
    assert "--overwrite: removed the previous run's checkpoint.pth, best.pth" in log
    assert (run / "notes.txt").read_text() == "mine"
    saved = torch.load(run / "checkpoint.pth", weights_only=True)
    assert saved["config"]["train"]["epochs"] == 1
    assert _leftovers(run) == []
    capsys.readouterr()


def test_overwrite_with_resume_is_refused_untouched(tiny_market, tmp_path, capsys):
    cfg = tiny_config(tmp_path / "run", tiny_market, TERMS, MODEL, train=TRAIN)
    assert train_main(["--config", str(config_file(cfg)), "--no-progress"]) == 0
    before = _digests(tmp_path / "run")
    capsys.readouterr()
    assert train_main(["--config", str(config_file(cfg)), "--no-progress", "--overwrite", "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--resume and --overwrite" in err and str(tmp_path / "run") in err
    assert _digests(tmp_path / "run") == before


def test_second_training_into_a_locked_folder_is_refused_and_a_stale_lock_is_not(tiny_market, tmp_path, capsys):
    cfg = tiny_config(tmp_path / "run", tiny_market, TERMS, MODEL, train=TRAIN)
    # another process holds the lock (as a running training does), then dies by kill -9 keeping the file
    script = ("import sys, time; from pathlib import Path; from reid.engine.run_folder import RunLock; "
              "lock = RunLock.acquire(Path(sys.argv[1])); print('held', flush=True); time.sleep(600)")
    holder = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "run")],
                              stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2])
    try:
        assert holder.stdout.readline().strip() == "held"
        for extra in ([], ["--overwrite"], ["--resume"]):
            assert train_main(["--config", str(config_file(cfg)), "--no-progress", *extra]) == 2
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and "in use by another training" in err and f"pid {holder.pid}" in err
            assert str(tmp_path / "run" / LOCK_NAME) in err
        assert os.listdir(tmp_path / "run") == [LOCK_NAME]  # nothing written, the holder's record kept
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (tmp_path / "run" / LOCK_NAME).exists()  # a stale lock file: its holder is gone
    assert train_main(["--config", str(config_file(cfg)), "--no-progress"]) == 0
    assert _leftovers(tmp_path / "run") == []  # the lock is released and removed at the end


def test_lock_is_released_when_set_up_fails_and_no_folder_is_left(tiny_market, tmp_path):
    cfg = tiny_config(tmp_path / "run", tmp_path / "no-data", TERMS, MODEL, train=TRAIN)
    with pytest.raises(FileNotFoundError, match="no-data"):
        Trainer(cfg, progress=False)
    assert not (tmp_path / "run").exists()
    RunLock.acquire(tmp_path / "run").release(remove_empty_dir=True)  # free again
    assert not (tmp_path / "run").exists()


def test_sigterm_stops_like_ctrl_c_saves_and_exits_143(tiny_market, tmp_path):
    train = {"epochs": 3, "iters_per_epoch": 12, "eval_every": 0, "projector_samples": 0, "threads": 1}
    cfg = tiny_config(tmp_path / "run", tiny_market, TERMS, MODEL, train=train)
    proc = subprocess.Popen([sys.executable, str(TOOL), "--config", str(config_file(cfg)), "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "OMP_NUM_THREADS": "1"})
    checkpoint = tmp_path / "run" / "checkpoint.pth"
    deadline = time.time() + 180
    while not checkpoint.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)  # the first epoch's checkpoint: the loop (and its signal handler) is running
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 143, err
    assert "training interrupted; checkpoint saved to" in err and "Traceback" not in err
    log = (tmp_path / "run" / "train.log").read_text()
    assert "SIGTERM: stopping after the current step" in log and "continue with --resume" in log
    saved = torch.load(checkpoint, weights_only=True)
    assert (saved["epoch"], saved["batch"]) < (3, 0) and saved["global_step"] > 12  # mid-run, after epoch 1
    assert _leftovers(tmp_path / "run") == []
    assert train_main(["--config", str(config_file(cfg)), "--no-progress", "--resume"]) == 0
    assert torch.load(checkpoint, weights_only=True)["epoch"] == 3


CTRL_C_DURING_CACHE_BUILD = """
import atexit, os, signal, sys
import reid.engine.data_setup as data_setup
from reid.cli import train_main

def interrupted(*args, **kwargs):  # Ctrl-C while the first split is being decoded, as Python delivers it
    raise KeyboardInterrupt

# a second, quick Ctrl-C that lands while the process exits (it printed "Exception ignored in atexit callback")
atexit.register(lambda: os.kill(os.getpid(), signal.SIGINT))
data_setup.decode_split = interrupted
sys.exit(train_main(sys.argv[1:]))
"""


def test_ctrl_c_during_the_cache_build_is_one_line_and_exit_130(tiny_market, tmp_path):
    """Issue 28.19: a 30-line traceback, and "Exception ignored in atexit callback" after two quick Ctrl-C."""
    cfg = tiny_config(tmp_path / "run", tiny_market, TERMS, MODEL, train={"epochs": 1, "eval_every": 0})
    proc = subprocess.run([sys.executable, "-c", CTRL_C_DURING_CACHE_BUILD, "--config", str(config_file(cfg)),
                           "--no-progress"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 130, proc.stderr
    assert "interrupted during set-up, before the first step: nothing was trained" in proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr
    assert not (tmp_path / "run" / "checkpoint.pth").exists() and not (tmp_path / "run" / ".lock").exists()


def _listing(folder: Path) -> list:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_fewer_identities_than_p_is_refused_before_decoding(tiny_market, tmp_path, capsys):
    cfg = tiny_config(tmp_path / "run", tiny_market, TERMS, MODEL, train=TRAIN, data={"p": 9},
                      transforms={"height": 48, "width": 24})  # a size no other test decodes: a new cache file
    before = _listing(tiny_market)
    assert train_main(["--config", str(config_file(cfg)), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "data.p=9: a batch needs 9 identities" in err and "has 8" in err
    assert f"under '{tiny_market}'" in err and "expected data.p <= 8" in err
    assert _listing(tiny_market) == before  # nothing decoded or cached
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("override,message", [
    ("transforms.height=0", "config key 'transforms.height': expected a number >= 1, got 0"),
    ("transforms.width=2.5", "config key 'transforms.width': expected a whole number of pixels, got 2.5"),
    ("transforms.random_erasing=1.5", "config key 'transforms.random_erasing': expected a number in [0, 1], got 1.5"),
    ("train.iters_per_epoch=0", "config key 'train.iters_per_epoch': expected a number >= 1, got 0"),
    ("data.cache_max_gb=-1", "config key 'data.cache_max_gb': expected a number >= 0, got -1.0"),
])
def test_out_of_range_values_are_refused_naming_the_key(override, message, tiny_market, tmp_path, capsys):
    cfg = tiny_config(tmp_path / "run", tiny_market, TERMS, MODEL, train=TRAIN)
    assert train_main(["--config", str(config_file(cfg)), "--no-progress", override]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "run").exists()


def test_full_disk_at_a_checkpoint_is_one_error_and_the_previous_checkpoint_is_kept(tiny_market, tmp_path):
    """Issue 28 item 10 end to end: `ulimit -f` below the checkpoint's size stands in for a full disk."""
    import resource

    run = tmp_path / "run"
    cfg = tiny_config(run, tiny_market, TERMS, MODEL, train=TRAIN)
    assert train_main(["--config", str(config_file(cfg)), "--no-progress"]) == 0
    checkpoint = run / "checkpoint.pth"
    before = _digests(run)["checkpoint.pth"]
    limit = checkpoint.stat().st_size // 2
    longer = tiny_config(run, tiny_market, TERMS, MODEL, train={**TRAIN, "epochs": 2})
    proc = subprocess.run(
        [sys.executable, str(TOOL), "--config", str(config_file(longer)), "--no-progress", "--resume"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"},
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)))
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip().splitlines()[-1]
    assert err.startswith(f"error: cannot write {checkpoint}: file-size limit reached (ulimit -f)"), proc.stderr
    assert "Traceback" not in proc.stderr and " MB free in " in err and "needed" in err
    assert _digests(run)["checkpoint.pth"] == before and _leftovers(run) == []
