"""The DarkRank speed-up measurement (studies/darkrank_speed.py): both networks timed in one process from their
arm configs, the ratio and the machine recorded, the table generated from the JSON."""
import json
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.study

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "studies"))
import darkrank_speed  # noqa: E402
import fair_study  # noqa: E402


def arm(folder: Path, name: str, backbone: str, height: int = 32, width: int = 16) -> None:
    (folder / f"{name}.yaml").write_text(
        f"model: {{backbone: {backbone}, pretrained: none}}\ntransforms: {{height: {height}, width: {width}}}\n")


def test_both_networks_are_timed_from_their_configs_and_the_ratio_recorded(tmp_path, monkeypatch):
    arm(tmp_path, "big", "small")
    arm(tmp_path, "little", "small_half")
    monkeypatch.setattr(darkrank_speed, "CONFIGS", tmp_path)
    out = tmp_path / "speed.json"
    darkrank_speed.main(["--teacher", "big", "--student", "little", "--batch", "4", "--reps", "2", "--json", str(out)])
    r = json.loads(out.read_text())
    assert (r["teacher"], r["student"], r["input"], r["batch"], r["reps"]) == ("big", "little", "32x16", 4, 2)
    assert r["speed_up"] == round(r["student_images_per_s"] / r["teacher_images_per_s"], 2)
    assert r["parameters"]["teacher"] > r["parameters"]["student"] > 0  # the half-width network is the smaller
    assert "cores" in r["machine"] and r["date"]
    table = darkrank_speed.markdown(r)
    assert f"| {r['speed_up']:.2f}x |" in table and "2.96x" in table  # beside the paper's figure


def test_networks_fed_different_input_sizes_are_refused(tmp_path, monkeypatch):
    arm(tmp_path, "big", "small", 64, 32)
    arm(tmp_path, "little", "small_half")
    monkeypatch.setattr(darkrank_speed, "CONFIGS", tmp_path)
    with pytest.raises(SystemExit, match="same input size"):
        darkrank_speed.measure("big", "little", batch=2, reps=1)


def test_the_speed_table_goes_into_its_block_of_the_pretrained_documents(tmp_path, monkeypatch):
    speed = {"teacher": "teacher", "student": "student_alone", "input": "128x64", "batch": 256, "reps": 7,
             "threads": 2, "machine": "a CPU, 2 cores, AVX2", "date": "2026-12-02", "teacher_images_per_s": 100.0,
             "student_images_per_s": 300.0, "speed_up": 3.0, "parameters": {"teacher": 5, "student": 3}}
    (tmp_path / "speed.json").write_text(json.dumps(speed))
    monkeypatch.setattr(fair_study, "SPEED_JSON", tmp_path / "speed.json")
    (tmp_path / "p.json").write_text("{}")
    doc = tmp_path / "doc.md"
    marker = "fair_study_pretrained:darkrank_speed"
    doc.write_text(f"<!-- {marker} -->\nold\n<!-- /{marker} -->\n")
    try:
        fair_study.main(["table", "--regime", "pretrained", "--json", str(tmp_path / "p.json"), "--into", str(doc)])
    finally:
        fair_study.use_regime("from_scratch")
    text = doc.read_text()
    assert "old" not in text and "| 100 | 300 | 3.00x |" in text
