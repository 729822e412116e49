"""studies/darkrank_gradients.py: per-term gradient norms on the backbone, from real loader batches."""
import importlib.util
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from engine_helpers import config_file, make_tiny_market, tiny_config  # noqa: E402

pytestmark = pytest.mark.study  # a study script (studies/), not the product: -m "not study" leaves it out

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("darkrank_gradients", REPO / "studies" / "darkrank_gradients.py")
darkrank_gradients = importlib.util.module_from_spec(spec)
spec.loader.exec_module(darkrank_gradients)


def test_each_term_is_measured_alone_and_scales_with_its_weight(tmp_path, capsys):
    root = make_tiny_market(tmp_path / "data")
    cfg = tiny_config(tmp_path / "run", root, [{"name": "softmax"}, {"name": "triplet", "margin": 0.3},
                                               {"name": "triplet", "margin": 0.3, "weight": 3.0}],
                      model={"classifier": "linear"})
    out = tmp_path / "g.json"
    assert darkrank_gradients.main(["--root", str(root), "--configs", str(config_file(cfg)), "--batches", "2",
                                    "--json", str(out)]) == 0
    (result,) = json.loads(out.read_text()).values()
    norms = result["gradient_norms"]
    assert set(norms) == {"softmax", "triplet", "triplet_1"} and result["batches"] == 2
    assert norms["softmax"] > 0 and norms["triplet"] > 0
    assert norms["triplet_1"] == pytest.approx(3 * norms["triplet"], rel=1e-3)  # the same term, weight 3
    table = capsys.readouterr().out
    assert "| triplet_1 (3) |" in table and "| softmax (1) |" in table


def test_measuring_needs_data_and_configs(tmp_path):
    with pytest.raises(SystemExit):
        darkrank_gradients.main(["--configs", "x.yaml", "--json", str(tmp_path / "g.json")])
    assert not (tmp_path / "g.json").exists()


def test_each_regime_writes_its_own_file_and_a_mix_is_refused():
    pretrained = REPO / "configs" / "pretrained_study" / "student_soft.yaml"
    scratch = REPO / "configs" / "cpu_study" / "student_soft.yaml"  # the same arm name in the other regime
    assert darkrank_gradients.default_json([pretrained]) == darkrank_gradients.PRETRAINED_JSON
    assert darkrank_gradients.default_json([scratch]) == darkrank_gradients.DEFAULT_JSON
    with pytest.raises(SystemExit, match="mixes configs/pretrained_study/"):
        darkrank_gradients.default_json([pretrained, scratch])
