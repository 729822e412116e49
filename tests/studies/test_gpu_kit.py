"""The GPU kit (studies/gpu/, issue 19) on the CPU: the recipe config, the staging archives, the status parser,
and a dry run of the whole procedure (stage -> start detached -> gallery + status -> final evaluation) with a tiny
budget on a Market-format fixture, where albumentations and numba cannot be imported (as on the GPU machine).
Nothing here touches the network."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from engine_helpers import BLOCK_OPTIONAL_DEPS

pytestmark = pytest.mark.study  # a study script (studies/), not the product: -m "not study" leaves it out

ROOT = Path(__file__).resolve().parents[2]
KIT = ROOT / "studies" / "gpu"
RECIPE = ROOT / "configs" / "gpu" / "market1501_sn_r50.yaml"


def _load(name: str):
    """A kit script as a module (unique names: the kit's folder is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"gpu_kit_{name}", KIT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


stage = _load("stage")
status = _load("status")

TINY = ["model.backbone=small", "model.embedding_dim=32", "transforms.height=32", "transforms.width=16",
        "transforms.pad=2", "data.p=4", "data.k=4", "train.epochs=2", "train.iters_per_epoch=2",
        "train.checkpoint_every=1", "train.log_every=1", "train.threads=1", "data.test_batch_size=64"]
SAFE = re.compile(r"^[A-Za-z0-9._-]+$")


# ------------------------------------------------------------------ the recipe
def test_recipe_loads_with_the_repo_loader_and_fits_the_budget():
    from reid.builders import build_losses_from_config
    from reid.config import load_config
    from reid.data.batch_augment import uses_tensor_pipeline
    from reid.data.transforms import resolve

    cfg = load_config(str(RECIPE))  # every key checked against reid/config_schema.py (unknown keys are errors)
    m, d, t = cfg["model"], cfg["data"], cfg["train"]
    assert (m["backbone"], m["pretrained"], m["last_stride"], m["bn_neck"]) == ("resnet50", "none", 1, False)
    assert (resolve(cfg["transforms"])["height"], resolve(cfg["transforms"])["width"]) == (256, 128)
    assert t["amp"] and t["channels_last"] and d["pipeline"] == "tensor" and uses_tensor_pipeline(cfg["transforms"])
    assert (d["p"], d["k"]) == (32, 4)
    [term] = cfg["loss"]["terms"]
    assert (term["name"], term["k"], term["sigma"], term["lambda_squeeze"]) == ("support_neighbor", 10, 50.0, 0.1)
    build_losses_from_config(cfg, num_classes=751)  # the term's parameters are valid
    assert cfg["schedule"]["name"] == "warmup_cosine" and cfg["schedule"]["warmup_epochs"] > 0
    assert t["eval_every"] == 0 and t["projector_samples"] == 0  # the gallery arrives after the start
    iterations = t["epochs"] * t["iters_per_epoch"]
    at_goal = 8 * 60 * 3000 / (d["p"] * d["k"])  # 11,250 iterations in 8 minutes at 3,000 img/s
    assert 0.7 * at_goal <= iterations <= at_goal
    assert iterations * d["p"] * d["k"] / 3218 <= 8 * 60  # at the measured step-only H100 rate (BENCHMARKS.md)


# ------------------------------------------------------------------ staging
def test_pack_leaves_out_junk_keeps_background_and_fits(tiny_market, tmp_path):
    report = stage.pack(tiny_market, tmp_path / "stage")
    release = stage.find_release(tiny_market)
    with tarfile.open(tmp_path / "stage" / "call1" / "market_part1.tar.gz") as tar:
        names1 = tar.getnames()
    with tarfile.open(tmp_path / "stage" / "call2" / "market_part2.tar.gz") as tar:
        names2 = tar.getnames()
    assert {n.split("/")[1] for n in names1} == {"bounding_box_train", "query"}
    assert {n.split("/")[1] for n in names2} == {"bounding_box_test"}
    assert all(n.startswith(stage.RELEASE + "/") for n in names1 + names2)
    gallery = [p.name for p in (release / "bounding_box_test").iterdir()]
    junk = [n for n in gallery if n.startswith("-1_")]
    background = [n for n in gallery if n.startswith("0000_")]
    assert junk and background
    packed = {n.rsplit("/", 1)[1] for n in names2}
    assert not packed & set(junk) and set(background) <= packed and len(packed) == len(gallery) - len(junk)
    assert report[2]["junk_dropped"] == len(junk)
    assert all(r["travels_mib"] < stage.TREE_LIMIT_MIB for r in report.values())
    # unpack checks the counts against the manifest
    stage.unpack(tmp_path / "stage" / "call2" / "market_part2.tar.gz", tmp_path / "data")
    assert len(list((tmp_path / "data" / stage.RELEASE / "bounding_box_test").iterdir())) == len(packed)
    manifest = tmp_path / "stage" / "call2" / "manifest.json"
    bad = json.loads(manifest.read_text())
    bad["splits"]["bounding_box_test"]["files"] += 1
    manifest.write_text(json.dumps(bad))
    with pytest.raises(SystemExit, match="manifest"):
        stage.unpack(tmp_path / "stage" / "call2" / "market_part2.tar.gz", tmp_path / "data2")


def test_pack_refuses_what_would_not_travel(tiny_market, tmp_path):
    with pytest.raises(SystemExit, match="MiB"):
        stage.pack(tiny_market, tmp_path / "stage", limit_mib=0.01)


# ------------------------------------------------------------------ status
LOG = """\
2026-11-27 10:00:00 train: 12936 decoded images at 256x128 in /root/reid_gpu/cache/x.npy
2026-11-27 10:00:10 training resnet50 on market1501: 12936 images, 751 ids, 150 batches/epoch, tensor pipeline, device cuda, world size 1
2026-11-27 10:00:17 epoch 1: support_neighbor 2.3000, total 2.3000, lr 1.00e-05
2026-11-27 10:00:23 epoch 2: support_neighbor 1.9000, total 1.9000, lr 2.08e-04
2026-11-27 10:00:29 epoch 3: support_neighbor 1.5000, total 1.5000, lr 4.06e-04
"""


def _run_folder(work: Path, log: str) -> None:
    (work / "run").mkdir(parents=True)
    (work / "run" / "config.yaml").write_text("data: {p: 32, k: 4}\ntrain: {epochs: 60, iters_per_epoch: 150}\n")
    (work / "run" / "train.log").write_text(log)


def test_status_reads_iteration_rate_and_eta(tmp_path):
    _run_folder(tmp_path, LOG)
    (tmp_path / "train.pid").write_text(str(os.getpid()))  # an alive process stands in for the trainer
    s = status.read_status(tmp_path, now=time.mktime(time.strptime("2026-11-27 10:00:31", "%Y-%m-%d %H:%M:%S")))
    assert s["state"] == "running" and (s["epoch"], s["iteration"], s["iterations"]) == (3, 450, 9000)
    assert s["img_s"] == pytest.approx(450 * 128 / 19, rel=1e-3)  # 3 epochs in 19 s since the start line
    assert s["eta_s"] == pytest.approx((9000 - 450) / (450 / 19), rel=1e-3)
    assert s["last"]["total"] == "1.5000"
    line = status.format_status(s)
    assert "iteration 450/9000" in line and "img/s" in line and "ETA" in line
    # a progress line inside the next epoch counts its batches; "training done" finishes
    more = LOG + ("2026-11-27 10:01:00 epoch 4/60: 100/150, 67%, 0:30 elapsed, 3.33 it/s, ETA 0:15, loss 1.4, "
                  "lr 6.04e-04\n")
    (tmp_path / "run" / "train.log").write_text(more)
    assert status.read_status(tmp_path)["iteration"] == 550
    (tmp_path / "run" / "train.log").write_text(more + "2026-11-27 10:07:00 training done in 410.0 s\n")
    s = status.read_status(tmp_path)
    assert s["finished"] and s["img_s"] == pytest.approx(9000 * 128 / 410.0, rel=1e-3)


def test_status_reports_a_dead_run(tmp_path):
    _run_folder(tmp_path, LOG)
    (tmp_path / "train.pid").write_text("999999999")
    (tmp_path / "run.log").write_text("Traceback ...\nRuntimeError: CUDA out of memory\n")
    out = subprocess.run([sys.executable, str(KIT / "status.py"), "--work", str(tmp_path)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 1 and "STOPPED" in out.stdout and "out of memory" in out.stdout


def test_final_stops_a_run_at_its_wait_bound_with_sigint(tmp_path):
    """The bound: SIGINT (the trainer's Ctrl-C: checkpoint at the step boundary), then evaluation of that."""
    _run_folder(tmp_path, LOG)
    trainer = subprocess.Popen([sys.executable, "-c", (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGINT, lambda *a: sys.exit(130))\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert trainer.stdout.readline().strip() == "ready"
        (tmp_path / "train.pid").write_text(str(trainer.pid))
        final = _load("final")
        start = time.time()
        s = final.wait_for_training(tmp_path, wait_max=1.0, max_train_s=600.0, stop_grace=20.0)
        assert time.time() - start < 20 and trainer.wait(timeout=20) == 130
        assert s["end"].startswith("stopped at the wait bound (SIGINT)") and s["state"] == "STOPPED"
    finally:
        if trainer.poll() is None:
            trainer.kill()
            trainer.wait()


# ------------------------------------------------------------------ the whole procedure, CPU dry run
def _run(cmd, env, timeout=120):
    start = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    print(f"{time.time() - start:6.1f} s  {' '.join(str(c) for c in cmd[:3])}")  # shown with pytest -s
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_dry_run_stage_start_status_final(tiny_market, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCK_OPTIONAL_DEPS)
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "PYTHON": sys.executable,
           "PYTHONPATH": os.pathsep.join([str(blocker), str(ROOT)])}
    stage_dir, work, out = tmp_path / "stage", tmp_path / "work", tmp_path / "out"
    py = [sys.executable]
    _run(py + [str(KIT / "stage.py"), "pack", "--root", str(tiny_market), "--dest", str(stage_dir)], env)
    try:
        # call 1: unpack train + query, start detached, return once an epoch is logged
        text = _run(["bash", str(KIT / "start.sh"), "--work", str(work), "--stage", str(stage_dir), "--device", "cpu",
                     "--config", str(RECIPE), "--confirm", "60", "--", *TINY], env)
        assert "training started: pid" in text and "[status" in text
        assert "albumentations absent" in text and "numba absent" in text  # the blocker is in force
        # call 2: the gallery, the query + gallery cache, keep-alive status
        _run(py + [str(KIT / "stage.py"), "unpack", "--archive", str(stage_dir / "call2" / "market_part2.tar.gz"),
                   "--dest", str(work / "data")], env)
        assert not any(p.name.startswith("-1_")
                       for p in (work / "data" / stage.RELEASE / "bounding_box_test").iterdir())
        _run(py + [str(KIT / "final.py"), "--work", str(work), "--prepare", "--threads", "1"], env)
        text = _run(py + [str(KIT / "status.py"), "--work", str(work), "--follow", "60", "--every", "1"], env)
        assert "finished" in text.splitlines()[-1] and "iteration 4/4" in text
        # call 3: wait (bounded), evaluate, collect
        _run(py + [str(KIT / "final.py"), "--work", str(work), "--out", str(out), "--device", "cpu",
                   "--threads", "1", "--wait-max", "60", "--weights"], env)
    finally:
        pid = status.read_pid(work)
        if pid and status.pid_alive(pid):  # the detached trainer this test started
            os.kill(pid, 9)
    results = json.loads((out / "results.json").read_text())
    assert "error" not in results, results.get("traceback")
    for key in ("single_query", "rerank"):
        assert {"rank1", "mAP"} <= set(results[key]) and {"rank1", "mAP"} <= set(results["summary"][key])
        for metric in ("rank1", "mAP"):  # the summary is the full figure in percent, 2 decimals
            assert results["summary"][key][metric] == round(100 * results[key][metric], 2)
    assert results["training"]["end"] == "finished" and results["training"]["iteration"] == 4
    assert results["checkpoint"]["global_step"] == 4
    ev = results["evaluation"]
    assert ev["gallery_junk"] == 0 and ev["gallery_background"] > 0 and ev["device"] == "cpu"
    assert not results["environment"]["albumentations_imported"] and not results["environment"]["numba_imported"]
    # what comes back: at most 8 files, each under 16 MiB, at most 2 folders down, safe names
    files = [p for p in out.rglob("*") if p.is_file()]
    assert 3 <= len(files) <= 8
    assert {"results.json", "train.log", "run.log"} <= {p.name for p in files}
    assert any("tfevents" in p.name for p in files)
    assert any(p.name.startswith("weights_fp16.pth.part") for p in files)
    assert sum(p.stat().st_size for p in files) < 64 * 2 ** 20
    for p in files:
        rel = p.relative_to(out)
        assert p.stat().st_size < 16 * 2 ** 20 and len(rel.parts) <= 3 and all(SAFE.match(x) for x in rel.parts)
    assert sorted(results["returned_files"]) == sorted(str(p.relative_to(out)) for p in files)
