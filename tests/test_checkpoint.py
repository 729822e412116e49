"""Checkpoint files (reid.checkpoint): a killed write leaves a temporary file that the next save removes (never a
live writer's or a foreign file), and an unreadable checkpoint is one line without unsafe advice."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def test_stale_checkpoint_temp_removed_on_next_save(tmp_path):
    from reid.checkpoint import load_checkpoint, remove_stale_temp_files, save_checkpoint

    stale = tmp_path / f".checkpoint.pth.tmp{_dead_pid()}"
    stale.write_bytes(b"half a checkpoint")
    live = tmp_path / f".checkpoint.pth.tmp{os.getppid()}"  # a writer that is still running: left alone
    live.write_bytes(b"being written")
    mine = tmp_path / f".best.pth.tmp{os.getpid()}"
    mine.write_bytes(b"ours")
    other = tmp_path / ".notes.tmpfile"  # not our naming scheme
    other.write_text("user file")
    save_checkpoint({"model": {"w": torch.ones(2)}}, tmp_path / "checkpoint.pth")
    assert not stale.exists()
    assert live.read_bytes() == b"being written" and mine.read_bytes() == b"ours"
    assert other.read_text() == "user file"
    assert torch.equal(load_checkpoint(tmp_path / "checkpoint.pth")["model"]["w"], torch.ones(2))
    assert remove_stale_temp_files(tmp_path) == []  # idempotent


def test_killed_checkpoint_write_leaves_no_temp_after_next_save(tmp_path):
    """A real kill -9 during torch.save leaves a temp file; the next process's save removes it."""
    script = ("import os, signal, torch, sys\n"
              "from reid import checkpoint\n"
              "def dying_save(obj, f):\n"
              "    f.write(b'partial')  # the open temporary file save_checkpoint hands torch.save\n"
              "    f.flush()\n"
              "    os.kill(os.getpid(), signal.SIGKILL)\n"
              "checkpoint.torch.save = dying_save\n"
              "checkpoint.save_checkpoint({'model': {}}, sys.argv[1])\n")
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "checkpoint.pth")], timeout=300,
                          env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"})
    assert proc.returncode == -9
    leftovers = list(tmp_path.glob(".checkpoint.pth.*tmp*"))  # .<name>.<random>.tmp<pid>
    assert len(leftovers) == 1 and not (tmp_path / "checkpoint.pth").exists()
    from reid.checkpoint import save_checkpoint

    save_checkpoint({"model": {}}, tmp_path / "checkpoint.pth")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pth"]


def test_unreadable_checkpoint_error_is_one_line_without_unsafe_advice(tmp_path):
    from reid.checkpoint import CheckpointError, load_checkpoint

    junk = tmp_path / "checkpoint.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(junk)
    message = str(info.value)
    assert message.startswith(f"cannot read checkpoint {junk}: ") and "\n" not in message
    assert "weights_only` set to `False" not in message and len(message) < 300
    assert junk.read_bytes() == b"not a checkpoint"
