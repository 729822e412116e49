"""reid.utils.atomic: the one temp-file-then-rename writer: umask modes, fsync, cleanup on failure."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from reid.utils import atomic as atomic_module
from reid.utils import atomic_path, atomic_write, current_umask, install_hint, make_public, public_mode


@pytest.fixture
def umask022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_current_umask_reads_the_process_umask_without_changing_it():
    old = os.umask(0o027)
    try:
        assert current_umask() == 0o027
        assert current_umask() == 0o027  # still set: reading did not reset it
        assert public_mode() == 0o640 and public_mode(folder=True) == 0o750
    finally:
        os.umask(old)


def test_written_file_gets_the_umask_mode_not_mkstemps_0600(tmp_path, umask022):
    target = tmp_path / "results.json"
    with atomic_write(target) as handle:
        handle.write('{"mAP": 0.5}')
    assert target.read_text() == '{"mAP": 0.5}'
    assert _mode(target) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temporary sibling left


def test_stricter_umask_is_respected(tmp_path):
    old = os.umask(0o077)
    try:
        with atomic_write(tmp_path / "private.txt") as handle:
            handle.write("x")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "private.txt") == 0o600


def test_failure_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "config.yaml"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_write(target) as handle:
            handle.write("half a ")
            raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]


def test_failure_of_a_new_file_creates_nothing(tmp_path):
    with pytest.raises(ValueError):
        with atomic_path(tmp_path / "sub" / "model.onnx") as tmp:
            tmp.write_bytes(b"partial")
            raise ValueError("export failed")
    assert list((tmp_path / "sub").iterdir()) == []


def test_data_is_fsynced_before_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(atomic_module.os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(atomic_module.os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
    with atomic_write(tmp_path / "a.bin", "wb") as handle:
        handle.write(b"123")
    assert events[:2] == ["fsync", "replace"]  # the file's data first, then the rename (then the folder)
    assert (tmp_path / "a.bin").read_bytes() == b"123"


def test_no_fsync_when_asked(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic_module.os, "fsync", lambda fd: pytest.fail("fsync called"))
    with atomic_write(tmp_path / "a.txt", fsync=False) as handle:
        handle.write("x")
    assert (tmp_path / "a.txt").read_text() == "x"


def test_keep_extension_for_writers_that_pick_the_format_by_name(tmp_path):
    with atomic_path(tmp_path / "figure.png", keep_extension=True) as tmp:
        assert tmp.suffix == ".png" and tmp.parent == tmp_path and tmp.name.startswith(".figure.png.")
        tmp.write_bytes(b"png")
    assert (tmp_path / "figure.png").read_bytes() == b"png"


def test_default_temporary_name_is_the_one_stale_cleanup_recognises(tmp_path):
    from reid.checkpoint import TEMP_NAME

    with atomic_path(tmp_path / "checkpoint.pth") as tmp:
        match = TEMP_NAME.match(tmp.name)
        assert match is not None and int(match.group(1)) == os.getpid()
        tmp.write_bytes(b"x")


def test_make_public_opens_a_mkdtemp_folder(tmp_path, umask022):
    import tempfile

    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    assert _mode(folder) == 0o700
    make_public(folder)
    assert _mode(folder) == 0o755


def test_bad_mode_is_refused():
    with pytest.raises(ValueError, match="mode must be 'w' or 'wb', got 'a'"):
        with atomic_write("unused", "a"):
            pass


def test_install_hint_names_the_free_distribution_not_the_registrys_reid():
    hint = install_hint("faiss")
    assert hint == "pip install 'reid-toolkit[faiss]' (from a checkout: pip install -e \".[faiss]\")"


_FULL_DISK = r"""
import resource, sys, torch
from reid.checkpoint import save_checkpoint
from reid.utils.atomic import DiskFullError, atomic_write
resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))  # what `ulimit -f` does: EFBIG past 300 kB
try:
    {write}
except DiskFullError as exc:
    print(exc)
    sys.exit(2)
"""


@pytest.mark.parametrize("name, write", [
    ("checkpoint.pth", "save_checkpoint({'model': {'w': torch.zeros(200_000)}}, sys.argv[1])"),
    ("results.json", "with atomic_write(sys.argv[1]) as fh: fh.write('x' * 1_000_000)"),
])
def test_full_disk_is_one_error_naming_the_file_and_space_and_keeps_the_previous_file(tmp_path, name, write):
    """Issue 28 item 10: `ulimit -f` in a subprocess stands in for a full disk (the same write error path)."""
    import subprocess
    import sys

    target = tmp_path / name
    target.write_bytes(b"previous epoch")
    proc = subprocess.run([sys.executable, "-c", _FULL_DISK.format(write=write), str(target)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    message = proc.stdout.strip()
    assert "\n" not in message and proc.stderr == ""
    assert message.startswith(f"cannot write {target}: file-size limit reached (ulimit -f), 0.3 MB")
    assert " MB free in " in message and "needed" in message and f"the previous {name} is untouched" in message
    assert target.read_bytes() == b"previous epoch"
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temporary file left
