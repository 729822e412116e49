"""benchmarks/pretrained_recipes.py: training minutes from the log, one row per evaluated point, the table."""
import importlib.util
import json
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("pretrained_recipes", REPO / "benchmarks" / "pretrained_recipes.py")
recipes = importlib.util.module_from_spec(spec)
spec.loader.exec_module(recipes)

LOG = """2026-12-02 01:21:24 epoch 1: softmax 6.6, total 8.9, lr 3.49e-04, epoch time 5:42, run ETA 1:14:00
2026-12-02 01:26:21 epoch 2: softmax 5.5, total 6.4, lr 3.45e-04, epoch time 4:57, run ETA 1:03:49
2026-12-02 01:30:00 resumed from run/checkpoint.pth: epoch 1, batch 0
2026-12-02 01:35:00 epoch 2: softmax 5.4, total 6.3, lr 3.45e-04, epoch time 3:30, run ETA 50:00
2026-12-02 03:35:00 epoch 3: softmax 5.0, total 6.0, lr 3.40e-04, epoch time 1:02:06, run ETA 0:00
"""


def test_epoch_minutes_keep_the_last_of_an_epoch_logged_twice():
    assert recipes.epoch_minutes(LOG) == pytest.approx({1: 5.7, 2: 3.5, 3: 62.1})


def _run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    cfg = {"output_dir": "runs/x", "model": {"backbone": "efficientnet_lite0"}, "transforms": {"height": 128,
           "width": 64}, "data": {"p": 16, "k": 4}, "train": {"iters_per_epoch": 250, "epochs": 4, "flip_test": True}}
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run / "train.log").write_text(LOG)
    return run


def test_row_and_table(tmp_path, monkeypatch):
    monkeypatch.setattr(recipes, "RESULTS", tmp_path / "rows.json")
    monkeypatch.setattr(recipes, "machine", lambda: "Test CPU, 2 cores, AVX-512")
    run = _run(tmp_path)
    row = recipes.make_row(run, 2, {"rank1": 0.7, "mAP": 0.5}, {"rank1": 0.75, "mAP": 0.65})
    assert (row["iterations"], row["schedule_iterations"], row["training_images"]) == (500, 1000, 32000)
    assert row["training_minutes"] == pytest.approx(9.2)
    recipes.store(row)
    recipes.store(dict(row, mAP=0.51))  # the same point again replaces it
    assert [r["mAP"] for r in json.loads((tmp_path / "rows.json").read_text())] == [0.51]
    page = tmp_path / "page.md"
    page.write_text("intro\n<!-- pretrained:recipes -->\nold\n<!-- /pretrained:recipes -->\nend\n")
    recipes.write_table([page])
    text = page.read_text()
    assert "old" not in text and text.startswith("intro\n") and text.endswith("end\n")
    assert ("| efficientnet_lite0 | 128x64 | 500 of 1,000 | 32,000 | 9.2 | Test CPU, 2 cores, AVX-512 | 70.00 | "
            "51.00 | 75.00 / 65.00 |") in text
    with pytest.raises(SystemExit, match="epoch\\(s\\) \\[4\\]"):
        recipes.make_row(run, 4, {"rank1": 0.7, "mAP": 0.5}, None)


EVALUATED = """2026-12-02 04:28:33 epoch 6: softmax 3.6409, triplet 0.4565, total 4.0974, lr 3.50e-06, epoch time 4:04
2026-12-02 04:31:40 evaluation after epoch 6:
  Rank-1   Rank-5  Rank-10  Rank-20      mAP     mINP  queries  skipped
  53.53%   76.57%   84.23%   89.61%   31.28%    7.14%     3368        0
"""


def test_a_row_from_the_logged_evaluation_with_its_variant(tmp_path, monkeypatch):
    monkeypatch.setattr(recipes, "RESULTS", tmp_path / "rows.json")
    monkeypatch.setattr(recipes, "machine", lambda: "Test CPU, 2 cores, AVX2")
    assert recipes.logged_result(EVALUATED, 6) == pytest.approx({"rank1": 0.5353, "mAP": 0.3128})
    with pytest.raises(SystemExit, match="no evaluation after epoch 5"):
        recipes.logged_result(EVALUATED, 5)
    run = _run(tmp_path)
    (run / "train.log").write_text(LOG + EVALUATED.replace("epoch 6", "epoch 3").replace("time 4:04", "time 4:00"))
    recipes.main(["collect", "--run", str(run), "--epoch", "3", "--variant", "no head conv"])
    row, = json.loads((tmp_path / "rows.json").read_text())
    assert (row["R1"], row["mAP"], row["rerank_mAP"], row["variant"]) == (0.5353, 0.3128, None, "no head conv")
    assert "| efficientnet_lite0 (no head conv) | 128x64 | 750 of 1,000 |" in recipes.render([row])
