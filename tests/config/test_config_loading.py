"""Config files and overrides (reid.config): defaults, `_base_` inheritance, overrides, unknown keys and bad
values, bad files, the saved config's round trip, which changes a resume refuses."""
import pytest
import yaml

from reid.config import ConfigError, DEFAULTS, load_config, resume_conflicts, save_config


def write(path, data):
    path.write_text(yaml.safe_dump(data))
    return path


def test_defaults_without_file():
    cfg = load_config()
    assert cfg == DEFAULTS
    assert cfg is not DEFAULTS


def test_base_inheritance_and_overrides(tmp_path):
    write(tmp_path / "base.yaml", {"model": {"backbone": "resnet18", "embedding_dim": 128}, "optim": {"lr": 0.1}})
    write(tmp_path / "child.yaml", {"_base_": "base.yaml", "optim": {"lr": 0.01}, "data": {"p": 8}})
    cfg = load_config(tmp_path / "child.yaml", ["data.k=2", "optim.lr=1e-3", "data.kwargs.split_id=3"])
    assert cfg["model"]["backbone"] == "resnet18"  # from the base
    assert cfg["model"]["embedding_dim"] == 128
    assert cfg["data"]["p"] == 8 and cfg["data"]["k"] == 2
    assert cfg["optim"]["lr"] == pytest.approx(1e-3)  # override beats child beats base
    assert cfg["data"]["kwargs"] == {"split_id": 3}
    assert cfg["optim"]["name"] == DEFAULTS["optim"]["name"]  # untouched default


def test_two_bases_do_not_reset_each_other(tmp_path):
    write(tmp_path / "a.yaml", {"model": {"backbone": "resnet18"}})
    write(tmp_path / "b.yaml", {"optim": {"lr": 0.5}})
    write(tmp_path / "c.yaml", {"_base_": ["a.yaml", "b.yaml"]})
    cfg = load_config(tmp_path / "c.yaml")
    assert cfg["model"]["backbone"] == "resnet18" and cfg["optim"]["lr"] == 0.5


def test_open_sections_are_replaced_not_merged(tmp_path):
    write(tmp_path / "base.yaml", {"loss": {"terms": [{"name": "triplet"}, {"name": "softmax"}]}})
    write(tmp_path / "child.yaml", {"_base_": "base.yaml", "loss": {"terms": [{"name": "support_neighbor"}]}})
    assert load_config(tmp_path / "child.yaml")["loss"]["terms"] == [{"name": "support_neighbor"}]


def test_unknown_key_suggests_nearest(tmp_path):
    path = write(tmp_path / "bad.yaml", {"optim": {"learning_rate": 0.1, "lrr": 1}})
    with pytest.raises(ConfigError, match=r"unknown config key 'optim\.(learning_rate|lrr)' in .*bad\.yaml"):
        load_config(path)
    with pytest.raises(ConfigError, match="did you mean 'model.backbone'"):
        load_config(None, ["model.backbon=resnet18"])


@pytest.mark.parametrize("override, message", [
    ("train.epochs=ten", "expected an integer"),
    ("model.bn_neck=3", "expected a boolean"),
    ("optim.lr=fast", "expected a number"),
    ("optim.name=rmsprop", "not one of: sgd, adam, adamw"),
    ("schedule.milestones=5", "expected a list"),
    ("nonsense", "key.sub=value"),
])
def test_bad_values(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping at top level"):
        load_config(tmp_path / "list.yaml")
    write(tmp_path / "loop_a.yaml", {"_base_": "loop_b.yaml"})
    write(tmp_path / "loop_b.yaml", {"_base_": "loop_a.yaml"})
    with pytest.raises(ConfigError, match="circular"):
        load_config(tmp_path / "loop_a.yaml")


def test_save_round_trip(tmp_path):
    cfg = load_config(None, ["model.backbone=small", "data.kwargs.num_ids=10"])
    save_config(cfg, tmp_path / "run" / "config.yaml")
    assert load_config(tmp_path / "run" / "config.yaml") == cfg


def test_resume_conflicts_ignore_safe_keys():
    old = load_config()
    new = load_config(None, ["train.epochs=500", "data.num_workers=0", "test.rerank=true"])
    assert resume_conflicts(old, new) == []
    changed = resume_conflicts(old, load_config(None, ["model.backbone=resnet18", "optim.lr=0.5"]))
    assert any(c.startswith("model.backbone") for c in changed) and any(c.startswith("optim.lr") for c in changed)
