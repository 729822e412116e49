"""Refusals before anything is written: an existing run folder, nothing to train, pair losses with K = 1, bad
images up front; the NaN message never points to a checkpoint that does not exist."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from engine_helpers import config_file, tiny_config
from reid.cli import train_main
from reid.config import ConfigError
from reid.data.image_io import ImageReadError
from reid.engine.trainer import RunFolderExists, Trainer, TrainingDiverged

TERMS = [{"name": "softmax"}, {"name": "triplet"}]
MODEL = {"classifier": "linear"}
TRAIN = {"epochs": 1, "iters_per_epoch": 2, "eval_every": 0, "projector_samples": 0}


def _digests(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def test_existing_run_folder_is_refused_untouched_then_overwrite_or_resume(tiny_market, tmp_path, capsys):
    cfg = tiny_config(tmp_path / "run", tiny_market, TERMS, MODEL, train=TRAIN)
    Trainer(cfg, progress=False).fit()
    before = _digests(tmp_path / "run")
    assert {"checkpoint.pth", "config.yaml"} <= set(before)
    with pytest.raises(RunFolderExists, match=r"--resume.*--overwrite"):
        Trainer(cfg, progress=False)
    code = train_main(["--config", str(config_file(cfg)), "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already holds a run" in err and "--overwrite" in err
    assert _digests(tmp_path / "run") == before  # nothing replaced
    Trainer(cfg, progress=False, overwrite=True).fit()  # on purpose
    Trainer(cfg, resume=True, progress=False)  # and a resume is never refused for it


@pytest.mark.parametrize("name", ["triplet", "support_neighbor"])
def test_pair_losses_with_k1_are_refused(name, tiny_market, tmp_path):
    cfg = tiny_config(tmp_path / "run", tiny_market, [{"name": name}], data={"k": 1}, train=TRAIN)
    with pytest.raises(ConfigError, match=rf"data.k=1: loss '{name}'.*k >= 2"):
        Trainer(cfg, progress=False)
    assert not (tmp_path / "run").exists()
    ok = tiny_config(tmp_path / "soft", tiny_market, [{"name": "softmax"}], MODEL, data={"k": 1}, train=TRAIN)
    Trainer(ok, progress=False)  # softmax alone needs no positives


def test_zero_epochs_is_refused(tiny_market, tmp_path):
    cfg = tiny_config(tmp_path / "run", tiny_market, TERMS, MODEL, train={**TRAIN, "epochs": 0})
    with pytest.raises(ConfigError, match=r"train.epochs=0: nothing to train"):
        Trainer(cfg, progress=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("pipeline", ["tensor", "albumentations"])
def test_bad_images_are_all_reported_before_training(pipeline, tiny_market, tmp_path):
    import shutil

    root = tmp_path / "data"
    market = root / "Market-1501-v15.09.15"  # the release name: data.root=<its parent> finds only that name
    shutil.copytree(tiny_market, market)
    train_imgs = sorted((market / "bounding_box_train").glob("*.jpg"))
    train_imgs[0].write_bytes(b"")
    data = train_imgs[1].read_bytes()
    train_imgs[1].write_bytes(data[: len(data) // 2])
    query = sorted((market / "query").glob("*.jpg"))[0]
    query.write_bytes(b"")
    cfg = tiny_config(tmp_path / "run", root, TERMS, MODEL, train={**TRAIN, "eval_every": 1},
                      data={"pipeline": pipeline})
    with pytest.raises(ImageReadError) as info:
        Trainer(cfg, progress=False)
    message = str(info.value)
    assert "2 unreadable image(s)" in message and train_imgs[0].name in message and train_imgs[1].name in message
    assert not (tmp_path / "run" / "checkpoint.pth").exists()
    skip = tiny_config(tmp_path / "skip", root, TERMS, MODEL, train={**TRAIN, "eval_every": 1},
                       data={"pipeline": pipeline, "on_error": "skip"})
    with pytest.raises(ImageReadError, match=query.name), pytest.warns(UserWarning, match="leaving out 2"):
        Trainer(skip, progress=False)  # a bad query image is an error whatever the policy
    query.unlink()  # without it the run trains on the remaining training images
    with pytest.warns(UserWarning, match="leaving out 2 unreadable"):
        trainer = Trainer(skip, progress=False)
    assert len(trainer.train_set) == len(train_imgs) - 2
    trainer.fit()


def test_nan_before_any_checkpoint_says_none_was_written(tiny_market, tmp_path):
    cfg = tiny_config(tmp_path / "run", tiny_market, TERMS, MODEL, train=TRAIN)
    trainer = Trainer(cfg, progress=False)
    real_forward = trainer.losses.forward

    def poisoned(outputs, labels, teacher=None, batch=None):
        total, terms = real_forward(outputs, labels, teacher, batch)
        return total * float("nan"), dict(terms, softmax=torch.tensor(float("nan")))

    trainer.losses.forward = poisoned
    with pytest.raises(TrainingDiverged, match="no checkpoint was written yet"):
        trainer.fit()
    assert not (tmp_path / "run" / "checkpoint.pth").exists()
