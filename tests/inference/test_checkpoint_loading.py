"""One way to load a trained model (`reid.checkpoint.load_model_from_checkpoint`), used by the feature extractor,
tools/test.py (`load_trained_model`) and the distillation teacher."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from engine_helpers import config_file, tiny_config
from reid.builders import build_model_from_config
from reid.checkpoint import CheckpointError, load_model_from_checkpoint, save_checkpoint

NUM_CLASSES = 5


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(config, checkpoint path, the trained model in eval mode): weights and BN statistics moved off their
    initial values, saved as the trainer saves them (weights, resolved config, class count)."""
    root = tmp_path_factory.mktemp("ckpt_loading")
    cfg = tiny_config(root / "run", root / "data", [{"name": "softmax"}], {"classifier": "linear"})
    torch.manual_seed(1)
    model = build_model_from_config(cfg, NUM_CLASSES)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
        model.train()
        for _ in range(3):  # running statistics away from (0, 1)
            model(torch.randn(8, 3, 64, 32) * 2 + 0.5, torch.randint(0, NUM_CLASSES, (8,)))
    model.eval()
    path = save_checkpoint({"model": model.state_dict(), "config": cfg, "num_classes": NUM_CLASSES},
                           root / "run" / "best.pth")
    return cfg, path, model


def _images(n: int = 6) -> torch.Tensor:
    return torch.randn(n, 3, 64, 32, generator=torch.Generator().manual_seed(7))


def test_loaded_model_gives_the_trained_outputs(trained):
    cfg, path, model = trained
    for given in (None, cfg, config_file(cfg)):  # embedded config, a mapping, a file
        loaded, used = load_model_from_checkpoint(path, given, device="cpu")
        assert not loaded.training and next(loaded.parameters()).device.type == "cpu"
        assert used["model"] == cfg["model"]
        with torch.no_grad():
            assert torch.equal(loaded(_images()), model(_images()))
            a, b = loaded(_images(), return_dict=True), model(_images(), return_dict=True)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        assert loaded.state_dict().keys() == model.state_dict().keys()
        assert all(torch.equal(v, model.state_dict()[k]) for k, v in loaded.state_dict().items())


def test_auto_device_and_torch_device(trained):
    _, path, _ = trained
    model, _ = load_model_from_checkpoint(path, device=torch.device("cpu"))
    assert next(model.parameters()).device == torch.device("cpu")
    model, _ = load_model_from_checkpoint(path, device="auto")
    assert next(model.parameters()).device.type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_missing_or_wrong_file_is_one_clear_error_naming_it(trained, tmp_path):
    cfg, _, _ = trained
    missing = tmp_path / "nope" / "model.pth"
    with pytest.raises(CheckpointError, match="checkpoint not found") as info:
        load_model_from_checkpoint(missing)
    assert str(missing) in str(info.value)
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError) as info:
        load_model_from_checkpoint(corrupt, cfg)
    assert str(corrupt) in str(info.value) and "\n" not in str(info.value)
    foreign = tmp_path / "foreign.pth"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="not a reid checkpoint") as info:
        load_model_from_checkpoint(foreign, cfg)
    assert str(foreign) in str(info.value)


def test_checkpoint_that_does_not_fit_the_config(trained, tmp_path):
    cfg, path, _ = trained
    other = tiny_config(tmp_path / "other", tmp_path / "data", [{"name": "softmax"}],
                        {"classifier": "linear", "embedding_dim": 48})
    with pytest.raises(CheckpointError, match="shape mismatches") as info:
        load_model_from_checkpoint(path, other)
    assert str(path) in str(info.value)
    backbone = tiny_config(tmp_path / "nin", tmp_path / "data", [{"name": "softmax"}],
                           {"classifier": "linear", "backbone": "nin_bn"})
    with pytest.raises(CheckpointError, match="'small' model but config .* builds 'nin_bn'") as info:
        load_model_from_checkpoint(path, config_file(backbone))
    assert str(path) in str(info.value)


def test_the_three_users_produce_identical_features(trained):
    import reid
    from reid.engine.distill import Teacher
    from reid.engine.tester import load_trained_model

    cfg, path, model = trained
    extractor = reid.FeatureExtractor(path, device="cpu")
    tested = load_trained_model(cfg, str(path), torch.device("cpu"))
    teacher = Teacher(config_file(cfg), path, num_classes=None, device="cpu")
    x = _images()
    with torch.no_grad():
        expected = model(x)
        assert torch.equal(extractor.model(x), expected)
        assert torch.equal(tested(x), expected)
        assert torch.equal(teacher(x)["normalized"], expected)
    assert extractor.config["model"] == cfg["model"] == teacher.config["model"]
    assert not any(p.requires_grad for p in teacher.parameters())
    # extracted features too: the extractor's pipeline on images, the same images through the other two models
    arrays = [np.random.default_rng(i).integers(0, 256, (64, 32, 3), dtype=np.uint8) for i in range(4)]
    batch = torch.stack([extractor._prepare(a) for a in arrays])
    features = extractor.extract(arrays)
    with torch.no_grad():
        for other in (tested(batch), teacher(batch)["normalized"]):
            assert torch.equal(features, torch.nn.functional.normalize(other.float(), dim=1))


def test_teacher_errors_say_teacher(trained, tmp_path):
    from reid.engine.distill import Teacher

    cfg, _, _ = trained
    with pytest.raises(CheckpointError, match="^teacher: checkpoint not found"):
        Teacher(config_file(cfg), tmp_path / "missing.pth", num_classes=None)
