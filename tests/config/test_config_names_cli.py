"""Configs on reid-train's command line (--print-config): packaged config names, other projects' key names moved
or explained, aliases inside a YAML file and a clash between an alias and its key."""
from __future__ import annotations

import pytest
import yaml

from reid import cli


def test_print_config_resolves_a_packaged_name_and_aliases(capsys):
    assert cli.train_main(["--config", "sn/market1501", "--print-config", "optim.base_lr=0.01",
                           "model.name=resnet18", "SOLVER.MAX_EPOCH=7"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["optim"]["lr"] == 0.01 and cfg["model"]["backbone"] == "resnet18" and cfg["train"]["epochs"] == 7
    assert cfg["output_dir"] == "runs/sn_market1501" and "base_lr" not in cfg["optim"]
    # the repository path still works, and the default is a packaged name too
    assert cli.train_main(["--config", "configs/sn/market1501.yaml", "--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["output_dir"] == "runs/sn_market1501"
    assert cli.train_main(["--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["data"]["dataset"] == "synthetic"


@pytest.mark.parametrize("override, message", [
    ("data.batch_size=64", "data.p identities x data.k images"),
    ("train.batch_size=64", "batch size = p x k"),
    ("train.lr_scheduler=cosine", "schedule.name"),
])
def test_foreign_names_with_another_meaning_are_explained(override, message, capsys):
    assert cli.train_main(["--print-config", override]) == 2
    err = capsys.readouterr().err
    assert message in err and override.split("=")[0] in err and "test_batch_size'?" not in err


def test_alias_in_a_yaml_file_and_a_clash_name_the_file(tmp_path, capsys):
    good = tmp_path / "fastreid.yaml"
    good.write_text("SOLVER:\n  BASE_LR: 0.02\nDATALOADER:\n  NUM_INSTANCE: 8\n")
    assert cli.train_main(["--config", str(good), "--print-config"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["optim"]["lr"] == 0.02 and cfg["data"]["k"] == 8
    clash = tmp_path / "clash.yaml"
    clash.write_text("optim:\n  lr: 0.1\n  base_lr: 0.2\n")
    assert cli.train_main(["--config", str(clash), "--print-config"]) == 2
    err = capsys.readouterr().err
    assert str(clash) in err and "optim.base_lr" in err and "also set" in err
    assert cli.train_main(["--config", "sn/market150"]) == 2
    assert "did you mean 'sn/market1501'" in capsys.readouterr().err
