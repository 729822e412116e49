"""Issue 16 item 10: configuration mistakes reach the user as one line and exit code 2 from reid-train (no
traceback, nothing trained, the config file untouched): bad values and keys, unknown names and parameters, missing
or bad weight files, own-data folders without images."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine_helpers import config_file, tiny_config
from reid.cli import train_main


@pytest.fixture()
def config(tiny_market, tmp_path):
    cfg = tiny_config(tmp_path / "run", tiny_market, [{"name": "triplet"}],
                      train={"epochs": 1, "iters_per_epoch": 1, "eval_every": 0, "projector_samples": 0})
    return config_file(cfg)


def refused(path: Path, capsys, *overrides: str) -> str:
    """Run reid-train with `overrides`; assert exit 2, one 'error:' line, no checkpoint, config file untouched."""
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    code = train_main(["--config", str(path), "--no-progress", *overrides])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert not (path.parent / "run" / "checkpoint.pth").exists()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    return err[0]


@pytest.mark.parametrize("override, expected", [
    ("data.p=0", "config key 'data.p': expected a number >= 1, got 0"),
    ("data.p=-2", "config key 'data.p': expected a number >= 1, got -2"),
    ("data.k=0", "config key 'data.k': expected a number >= 1, got 0"),
    ("optim.lr=-1", "config key 'optim.lr': expected a number >= 0, got -1.0"),
    ("optim.lr=nan", "config key 'optim.lr': expected a number"),
    ("data.num_workers=-1", "config key 'data.num_workers': expected a number >= 0, got -1"),
    ("transforms.heigth=64", "unknown config key 'transforms.heigth'; did you mean 'transforms.height'?"),
])
def test_bad_values_refused_when_config_is_read(config, capsys, override, expected):
    assert expected in refused(config, capsys, override)
    assert not (config.parent / "run").exists()  # refused before anything was created


def test_unknown_transforms_key_in_a_file(config, capsys, tmp_path):
    text = config.read_text().replace("transforms:\n", "transforms:\n  hflp: 0.5\n")
    assert "hflp" in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    assert "unknown config key 'transforms.hflp'; did you mean 'transforms.hflip'?" in refused(bad, capsys)


@pytest.mark.parametrize("override, expected", [
    ("loss.terms=[{name: tripet}]", "loss.terms[0].name: unknown loss 'tripet'. Did you mean 'triplet'?"),
    ("loss.terms=[{name: triplet, margn: 0.3}]", "loss.terms[0] (triplet): unknown parameter(s) margn; valid:"),
    ("loss.terms=[triplet]", "loss.terms[0]: expected a mapping such as {name: triplet}, got 'triplet'"),
    ("data.kwargs.colour=red", "unknown option(s) data.kwargs.colour for dataset 'market1501'; valid: distractors"),
    ("data.dataset=market15", "data.dataset: unknown dataset 'market15'. Did you mean 'market1501'?"),
    ("model.backbone=smal", "model.backbone: unknown backbone 'smal'. Did you mean 'small'?"),
    ("model.last_stride=3", "model: backbone 'small': last_stride must be 1 or 2, got 3"),
])
def test_unknown_names_and_parameters_refused(config, capsys, override, expected):
    assert expected in refused(config, capsys, override)


def test_pretrained_missing_or_bad_file(config, capsys, tmp_path):
    missing = tmp_path / "nope.pth"
    assert f"model.pretrained: file {missing} not found" in refused(config, capsys, f"model.pretrained={missing}")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a state dict")
    assert f"model.pretrained: {junk} is not a loadable state dict" in refused(config, capsys,
                                                                              f"model.pretrained={junk}")
    assert junk.read_bytes() == b"not a state dict"
    assert "is a folder, not a file" in refused(config, capsys, f"model.pretrained={tmp_path}")


def test_pretrained_imagenet_offline_says_how_to_pass_a_local_file(config, capsys, monkeypatch):
    import urllib.error

    from reid.models import weights

    def offline(name):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(weights, "_download", offline)
    line = refused(config, capsys, "model.backbone=resnet18", "model.pretrained=imagenet")
    assert "could not download ImageNet weights for 'resnet18'" in line
    assert "https://download.pytorch.org/models/resnet18-" in line
    assert "model.pretrained=/path/to/resnet18-" in line and "or use 'none'" in line


def test_training_on_an_empty_own_data_folder(config, capsys, tmp_path):
    root = tmp_path / "own"
    for split in ("train", "query", "gallery"):
        (root / split / "someone").mkdir(parents=True)
    line = refused(config, capsys, "data.dataset=folder", f"data.root={root}")
    assert f"own-data folder {root} holds no images" in line


def test_training_without_training_images(config, capsys, tmp_path):
    import cv2
    import numpy as np

    root = tmp_path / "own"
    (root / "train").mkdir(parents=True)
    for split in ("query", "gallery"):
        (root / split / "someone").mkdir(parents=True)
        cv2.imwrite(str(root / split / "someone" / "a.png"), np.zeros((8, 4, 3), np.uint8))
    line = refused(config, capsys, "data.dataset=folder", f"data.root={root}")
    assert "dataset 'folder'" in line and "has no training images (its train split is empty)" in line


def test_reid_train_subprocess_exit_code(config):
    """The installed entry point path: exit status 2 and no traceback in a real process."""
    proc = subprocess.run([sys.executable, "-c", "import sys; from reid.cli import train_main; "
                           "sys.exit(train_main(sys.argv[1:]))", "--config", str(config), "data.p=0"],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"})
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: config key 'data.p': expected a number >= 1, got 0"
