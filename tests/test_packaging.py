"""A non-editable install works: build the wheel, install it into a fresh virtualenv, run the console scripts.

The virtualenv sees this interpreter's packages (torch etc. are never downloaded; pip runs with --no-index and
--no-deps, so the test never touches the network), but not this checkout: configs must come from the wheel.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import yaml

from reid.utils import DISTRIBUTION

REPO = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(importlib.util.find_spec("setuptools") is None,
                       reason="setuptools is needed to build the wheel (it is in the test extra)"),
]


def _run(*cmd, cwd: Path, env=None) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, f"{cmd}: {proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv bin folder, wheel path, env) for a wheel of this checkout installed into a fresh virtualenv."""
    root = tmp_path_factory.mktemp("packaging")
    source = root / "source"  # a copy, so the build leaves no build/ or egg-info in the checkout
    source.mkdir()
    for name in ("setup.py", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, source / name)
    for name in ("reid", "configs"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    _run(sys.executable, "-m", "pip", "wheel", source, "--no-deps", "--no-build-isolation", "--no-index",
         "-w", root / "dist", "-q", cwd=root)
    wheel = next((root / "dist").glob("reid_toolkit-*.whl"))  # the free registry name; the import name is reid
    venv = root / "venv"
    # without pip of its own (creating one costs ~20 s); this interpreter's pip installs into it via --python
    _run(sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv, cwd=root)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / "python"
    # This interpreter may itself be a virtualenv (CI): make its packages visible too, after the venv's own.
    site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=root)
                .stdout.strip())
    here = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "outer_env.pth").write_text("\n".join(sorted(here)) + "\n")
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel, cwd=root)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(NO_ALBUMENTATIONS_UPDATE="1", PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}")
    return bin_dir, wheel, env


def test_wheel_holds_configs_and_license(installed):
    _, wheel, _ = installed
    names = zipfile.ZipFile(wheel).namelist()
    assert "reid/configs/sn/market1501.yaml" in names and "reid/configs/_base_/market1501.yaml" in names
    assert sum(n.startswith("reid/configs/") and n.endswith(".yaml") for n in names) == \
        len(list((REPO / "configs").glob("**/*.yaml")))
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not any(n.startswith(("tests/", "tools/")) for n in names)


def test_console_scripts_run_from_the_wheel(installed, tmp_path):
    bin_dir, _, env = installed
    where = _run(bin_dir / "python", "-c", "import reid, reid.config.names as c; "
                 "print(reid.__file__); print(c.packaged_configs_dir())", cwd=tmp_path, env=env).stdout.split()
    venv = bin_dir.parent.resolve()
    assert all(Path(p).resolve().is_relative_to(venv) for p in where), where  # not the checkout
    assert "--print-config" in _run(bin_dir / "reid-train", "--help", cwd=tmp_path, env=env).stdout
    assert "--checkpoint" in _run(bin_dir / "reid-test", "--help", cwd=tmp_path, env=env).stdout
    printed = _run(bin_dir / "reid-train", "--config", "sn/market1501", "--print-config", "optim.base_lr=0.01",
                   cwd=tmp_path, env=env).stdout
    cfg = yaml.safe_load(printed)
    assert cfg["output_dir"] == "runs/sn_market1501" and cfg["optim"]["lr"] == 0.01  # _base_ chain resolved too


def test_wheel_is_distributed_under_the_free_name(installed):
    _, wheel, _ = installed
    names = zipfile.ZipFile(wheel).namelist()
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    lines = zipfile.ZipFile(wheel).read(metadata).decode().splitlines()
    assert f"Name: {DISTRIBUTION}" in lines and DISTRIBUTION == "reid-toolkit"  # the registry's `reid` is another
    assert "Provides-Extra: faiss" in lines
    requires = [line for line in lines if line.startswith("Requires-Dist: faiss-cpu")]
    assert any("extra == \"test\"" in line for line in requires), requires  # the faiss tests run, not skip
    assert 'Requires-Dist: matplotlib; extra == "plot"' in lines  # the figures' drawing library, optional


def test_wheel_holds_every_package_under_the_import_name_reid(installed):
    _, wheel, _ = installed
    names = zipfile.ZipFile(wheel).namelist()
    packages = {str(p.parent.relative_to(REPO)) for p in (REPO / "reid").rglob("__init__.py")}
    assert {str(Path(n).parent) for n in names if n.endswith("/__init__.py")} == packages
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} == {"reid"}


def test_tool_console_scripts_run_from_the_wheel(installed, tmp_path):
    """reid-evaluate, reid-export and reid-dataset are installed with the wheel, not only in tools/."""
    bin_dir, _, env = installed
    assert "--knn-backend" in _run(bin_dir / "reid-evaluate", "--help", cwd=tmp_path, env=env).stdout
    assert "--opset" in _run(bin_dir / "reid-export", "--help", cwd=tmp_path, env=env).stdout
    import numpy as np

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "q.npz", features=rng.normal(size=(4, 3)), pids=[1, 2, 3, 4], camids=[0, 0, 0, 0])
    np.savez(tmp_path / "g.npz", features=rng.normal(size=(8, 3)), pids=[1, 2, 3, 4] * 2, camids=[1] * 8)
    printed = _run(bin_dir / "reid-evaluate", "--query", "q.npz", "--gallery", "g.npz", "--json", "out.json",
                   cwd=tmp_path, env=env).stdout
    assert "mAP" in printed and (tmp_path / "out.json").is_file()
    proc = subprocess.run([str(bin_dir / "reid-dataset"), "--dataset", "market1501", "--root", "nowhere"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1
