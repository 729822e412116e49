#!/usr/bin/env python
"""Last command on the GPU machine: wait (bounded) for the detached training, evaluate it on the GPU, and put the
results JSON, the logs and the TensorBoard scalars into the folder that comes back ($OUT).

    python3 studies/gpu/final.py --work /root/reid_gpu --out "$OUT"            # call 3
    python3 studies/gpu/final.py --work /root/reid_gpu --prepare               # call 2: decode query + gallery now

Waiting ends when train.log says "training done", when the process is gone, or at the bound: --max-train-s after
the training started (train.pid written) or --wait-max after this command started, whichever comes first. At the
bound the run is stopped as Ctrl-C stops it (SIGINT: the trainer finishes its step and saves checkpoint.pth) and
that checkpoint is evaluated; the JSON says so ("training.end"). Evaluation: the model of run/checkpoint.pth on
data/ (query + the staged gallery), features from the decoded uint8 cache (the tensor data path: no
albumentations, no numba needed), AMP and flip as the run's config says, Market-1501 single query, then
k-reciprocal re-ranking (test.k1 / k2 / lambda_value). $OUT receives at most 8 files, each under 16 MiB:
results.json, train.log, run.log, tensorboard/<events files of the run> and tensorboard/<eval scalars>
(+ optional fp16 weights in parts with --weights, as slots allow).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from status import format_status, pid_alive, read_status  # noqa: E402

MAX_FILES = 8
MAX_BYTES = 16 * 2 ** 20 - 64 * 1024  # under the 16 MiB per file limit, with room to spare
MAX_TOTAL = 62 * 2 ** 20  # under the 64 MiB that come back together
SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


def log(msg: str) -> None:
    print(f"[final {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def wait_for_training(work: Path, wait_max: float, max_train_s: float, every: float = 30.0,
                      stop_grace: float = 120.0) -> Dict[str, Any]:
    """Block until training ends or a bound is reached (then stop it with SIGINT); the status with `end` set."""
    started = time.time()
    pid_file = work / "train.pid"
    train_start = pid_file.stat().st_mtime if pid_file.is_file() else started
    deadline = min(started + wait_max, train_start + max_train_s)
    last_print = 0.0
    while True:
        s = read_status(work)
        if s["finished"]:
            s["end"] = "finished"
            return s
        if not s["alive"]:
            s["end"] = "process gone without 'training done' (crash or kill: see run.log)"
            return s
        now = time.time()
        if now >= deadline:
            break
        if now - last_print >= every:
            log(format_status(s))
            last_print = now
        time.sleep(min(2.0, max(0.1, deadline - now)))
    pid = s["pid"]
    log(f"wait bound reached ({time.time() - started:.0f} s waited, {time.time() - train_start:.0f} s since the start): "
        f"stopping pid {pid} with SIGINT (it saves checkpoint.pth at the step boundary)")
    os.kill(pid, signal.SIGINT)
    end = time.time() + stop_grace
    while pid_alive(pid) and time.time() < end:
        time.sleep(0.5)
    if pid_alive(pid):
        log(f"pid {pid} still running after {stop_grace:.0f} s: SIGKILL; the last epoch checkpoint is evaluated")
        os.kill(pid, signal.SIGKILL)
        time.sleep(1)
        how = "killed at the wait bound (SIGINT did not stop it): the last saved checkpoint"
    else:
        how = "stopped at the wait bound (SIGINT): checkpoint of that step"
    s = read_status(work)
    s["end"] = how
    return s


def eval_config(work: Path, checkpoint: Optional[Path], device: str, overrides: Sequence[str]) -> Dict[str, Any]:
    """The run's config (from the checkpoint, else run/config.yaml) pointed at the full data root."""
    from reid.config import load_config

    extra = [f"data.root={work / 'data'}", f"data.cache_dir={work / 'cache'}", f"train.device={device}", *overrides]
    if checkpoint is not None and checkpoint.is_file():
        from reid.cli import load_test_config

        return load_test_config(None, str(checkpoint), extra)
    return load_config(str(work / "run" / "config.yaml"), extra)


def decode_test_splits(cfg: Dict[str, Any], threads: int) -> Dict[str, Any]:
    """Build the dataset on the full data root and decode query + gallery into the uint8 cache (reused if built)."""
    from reid.data.cache import decode_split
    from reid.data.datasets import build_dataset  # not reid.builders: --prepare then never imports the models
    from reid.data.transforms import resolve

    size = resolve(cfg["transforms"])
    h, w = int(size["height"]), int(size["width"])
    data = cfg["data"]
    dataset = build_dataset(data["dataset"], data["root"], **{**data["kwargs"], **cfg["test"]["dataset_kwargs"]})
    out: Dict[str, Any] = {"dataset": dataset}
    for split in ("query", "gallery"):
        samples = getattr(dataset, split)
        t = time.time()
        decoded, bad = decode_split([s.path for s in samples], h, w, cache_dir=cfg["data"]["cache_dir"],
                                    max_gb=float(cfg["data"]["cache_max_gb"]), threads=threads)
        if decoded is None:
            raise SystemExit(f"error: the decoded {split} split exceeds data.cache_max_gb={cfg['data']['cache_max_gb']}"
                             " (raise it with an override; the per-file path needs albumentations)")
        if bad:
            raise SystemExit(f"error: {len(bad)} unreadable {split} images, e.g. {bad[0]}")
        out[split] = decoded
        log(f"{split}: {len(samples)} images decoded at {h}x{w} in {time.time() - t:.1f} s")
    return out


def evaluate(cfg: Dict[str, Any], checkpoint: Path, threads: int, rerank: bool) -> Dict[str, Any]:
    import torch

    from reid.builders import resolve_device
    from reid.data.loader import build_test_loader
    from reid.engine.evaluator import evaluate_features, feature_set
    from reid.engine.tester import load_trained_model

    timings: Dict[str, float] = {}
    t = time.time()
    splits = decode_test_splits(cfg, threads)
    timings["decode_s"] = round(time.time() - t, 2)
    dataset = splits["dataset"]
    device = resolve_device(cfg["train"]["device"])
    model = load_trained_model(cfg, str(checkpoint), device)
    if cfg["train"]["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    amp = bool(cfg["train"]["amp"]) and device.type == "cuda"
    flip = bool(cfg["train"]["flip_test"])
    bs = int(cfg["data"]["test_batch_size"])
    sets = {}
    t = time.time()
    for split in ("query", "gallery"):
        samples = getattr(dataset, split)
        loader = build_test_loader(samples, cfg["transforms"], batch_size=bs, decoded=splits[split])
        sets[split] = feature_set(model, samples, loader, device, flip=flip, amp=amp, desc=split, progress=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    timings["features_s"] = round(time.time() - t, 2)
    n_images = len(dataset.query) + len(dataset.gallery)
    timings["features_img_s"] = round(n_images * (2 if flip else 1) / max(timings["features_s"], 1e-9), 1)
    log(f"features: {n_images} images (flip {flip}, AMP {amp}) in {timings['features_s']} s")
    results: Dict[str, Any] = {}
    t = time.time()
    test_cfg = dict(cfg["test"])
    sq = evaluate_features(sets["query"], sets["gallery"], {**test_cfg, "rerank": False},
                           has_cameras=dataset.has_cameras)
    timings["single_query_s"] = round(time.time() - t, 2)
    log(f"single query:\n{sq.table()}")
    results["single_query"] = sq.to_dict()
    if rerank:
        t = time.time()
        rr = evaluate_features(sets["query"], sets["gallery"], {**test_cfg, "rerank": True},
                               has_cameras=dataset.has_cameras)
        timings["rerank_s"] = round(time.time() - t, 2)
        log(f"+ re-ranking (k1 {test_cfg['k1']}, k2 {test_cfg['k2']}, lambda {test_cfg['lambda_value']}) in "
            f"{timings['rerank_s']} s:\n{rr.table()}")
        results["rerank"] = rr.to_dict()
    g_pids = [s.pid for s in dataset.gallery]
    results["evaluation"] = {
        "checkpoint": str(checkpoint), "query": len(dataset.query), "gallery": len(dataset.gallery),
        "gallery_junk": sum(1 for p in g_pids if p == -1), "gallery_background": sum(1 for p in g_pids if p == 0),
        "flip": flip, "amp": amp, "device": str(device), **timings,
        "note": ("junk (-1) gallery images are not staged: single query CMC/mAP are those of the full gallery (the "
                 "protocol removes junk from every ranking); re-ranking's neighbour sets lack them"
                 if not any(p == -1 for p in g_pids) else "full gallery, junk included"),
    }
    return results


def environment() -> Dict[str, Any]:
    import platform

    import torch

    env: Dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                           "cuda_available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
    env["albumentations_imported"] = "albumentations" in sys.modules
    env["numba_imported"] = "numba" in sys.modules
    return env


def summary(results: Dict[str, Any]) -> Dict[str, Any]:
    out = {}
    for key in ("single_query", "rerank"):
        if key in results:
            r = results[key]
            out[key] = {"rank1": round(100 * r["rank1"], 2), "mAP": round(100 * r["mAP"], 2),
                        "rank5": round(100 * r["rank5"], 2), "mINP": round(100 * r["mINP"], 2)}
    return out


def write_eval_scalars(folder: Path, results: Dict[str, Any], step: int) -> List[Path]:
    """The final metrics as TensorBoard scalars (a separate events file, safe file name)."""
    from torch.utils.tensorboard import SummaryWriter

    tmp = folder / "_eval_tmp"
    writer = SummaryWriter(log_dir=str(tmp))
    try:
        for key, values in summary(results).items():
            for name, v in values.items():
                writer.add_scalar(f"final/{key}/{name}", v, step)
    finally:
        writer.close()
    written = []
    for i, f in enumerate(sorted(tmp.glob("events.out.tfevents.*"))):
        target = folder / f"events.out.tfevents.final{i}"
        shutil.move(str(f), target)
        written.append(target)
    shutil.rmtree(tmp, ignore_errors=True)
    return written


def copy_limited(src: Path, dst: Path, keep_tail: bool = True) -> Path:
    """Copy `src` to `dst`, keeping only its last MAX_BYTES when larger (a log)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    size = src.stat().st_size
    if size <= MAX_BYTES:
        shutil.copyfile(src, dst)
    else:
        with open(src, "rb") as f:
            f.seek(size - MAX_BYTES + 200 if keep_tail else 0)
            data = f.read(MAX_BYTES - 200)
        dst.write_bytes(b"[... truncated to the last part ...]\n" + data)
    return dst


def collect(work: Path, out: Path, results: Dict[str, Any], weights: Optional[Path]) -> List[str]:
    """results.json, logs and TensorBoard files into `out` (at most MAX_FILES files under MAX_BYTES each)."""
    out.mkdir(parents=True, exist_ok=True)
    files: List[Path] = []
    notes: List[str] = []
    for name in ("train.log",):
        src = work / "run" / name
        if src.is_file():
            files.append(copy_limited(src, out / name))
    if (work / "run.log").is_file():
        files.append(copy_limited(work / "run.log", out / "run.log"))
    tb = out / "tensorboard"
    tb.mkdir(parents=True, exist_ok=True)
    if "single_query" in results:
        files += write_eval_scalars(tb, results, int(results.get("training", {}).get("iteration") or 0))
    events = sorted((work / "run" / "tensorboard").glob("events.out.tfevents.*"),
                    key=lambda p: p.stat().st_mtime, reverse=True)
    budget = MAX_FILES - 1 - len(files) - (3 if weights is not None else 0)  # 1: results.json
    for i, ev in enumerate(events):
        if i >= max(1, budget):
            notes.append(f"left out {ev.name} (file limit)")
            continue
        if ev.stat().st_size > MAX_BYTES:
            notes.append(f"left out {ev.name} ({ev.stat().st_size} bytes > limit)")
            continue
        name = SAFE_NAME.sub("_", ev.name)
        files.append(copy_limited(ev, tb / name, keep_tail=False))
    if weights is not None and weights.is_file():
        room = MAX_TOTAL - sum(p.stat().st_size for p in files) - 2 ** 20  # 1 MiB for results.json
        files += split_weights(weights, out, MAX_FILES - 1 - len(files), room, notes)
    results["returned_files"] = sorted(str(p.relative_to(out)) for p in files) + ["results.json"]
    if notes:
        results["returned_notes"] = notes
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    return results["returned_files"]


def split_weights(checkpoint: Path, out: Path, slots: int, room: int, notes: List[str]) -> List[Path]:
    """The model's weights in fp16, split into parts under MAX_BYTES (`cat weights_fp16.pth.part* > w.pth`)."""
    import io

    import torch

    from reid.checkpoint import load_checkpoint

    state = load_checkpoint(str(checkpoint))
    weights = {k: (v.half() if v.is_floating_point() else v) for k, v in state["model"].items()}
    buf = io.BytesIO()
    torch.save({"model": weights, "config": state.get("config"), "num_classes": state.get("num_classes")}, buf)
    data = buf.getvalue()
    parts = -(-len(data) // MAX_BYTES)
    if parts > slots or len(data) > room:
        notes.append(f"weights left out: {parts} parts / {len(data)} bytes needed, {slots} file slots / {room} "
                     "bytes left")
        return []
    written = []
    for i in range(parts):
        p = out / f"weights_fp16.pth.part{i}"
        p.write_bytes(data[i * MAX_BYTES:(i + 1) * MAX_BYTES])
        written.append(p)
    return written


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="/root/reid_gpu", help="the folder start.sh used")
    parser.add_argument("--out", default=os.environ.get("OUT"), help="where the returned files go (default $OUT)")
    parser.add_argument("--device", default="cuda", help="evaluation device (cpu for the dry run)")
    parser.add_argument("--wait-max", type=float, default=300.0, help="seconds this command waits at most")
    parser.add_argument("--max-train-s", type=float, default=540.0,
                        help="the training is stopped this many seconds after it started (train.pid), at the latest")
    parser.add_argument("--no-rerank", action="store_true", help="single query only")
    parser.add_argument("--weights", action="store_true",
                        help="also return the weights in fp16, split into parts under 16 MiB (ResNet-50: 3 parts)")
    parser.add_argument("--threads", type=int, default=min(16, os.cpu_count() or 1),
                        help="decoding threads (default: the cores, at most 16)")
    parser.add_argument("--prepare", action="store_true",
                        help="decode query + gallery into the cache now (call 2, while training runs) and exit")
    parser.add_argument("overrides", nargs="*", help="config overrides for the evaluation, key=value")
    args = parser.parse_args(argv)
    work = Path(args.work).resolve()
    if args.prepare:
        t = time.time()
        cfg = eval_config(work, None, "cpu", args.overrides)
        decode_test_splits(cfg, args.threads)
        log(f"query + gallery cache ready in {time.time() - t:.1f} s")
        return 0
    if not args.out:
        parser.error("--out is required when $OUT is not set")
    out = Path(args.out)
    t0 = time.time()
    results: Dict[str, Any] = {"command": [sys.executable, *sys.argv], "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    code = 0
    try:
        status = wait_for_training(work, args.wait_max, args.max_train_s)
        results["training"] = status
        log(format_status(status) + f" | end: {status['end']}")
        checkpoint = work / "run" / "checkpoint.pth"
        if not checkpoint.is_file():
            raise SystemExit(f"error: no checkpoint at {checkpoint} (training ended: {status['end']})")
        from reid.checkpoint import load_checkpoint

        state = load_checkpoint(str(checkpoint))
        results["checkpoint"] = {k: state.get(k) for k in ("epoch", "batch", "global_step")}
        del state
        cfg = eval_config(work, checkpoint, args.device, args.overrides)
        results.update(evaluate(cfg, checkpoint, args.threads, rerank=not args.no_rerank))
        results["summary"] = summary(results)
        results["config"] = cfg
        log(f"summary: {json.dumps(results['summary'])}")
    except BaseException as exc:  # noqa: BLE001 - the logs must come back whatever happened
        results["error"] = f"{type(exc).__name__}: {exc}"
        results["traceback"] = traceback.format_exc()
        log(f"FAILED: {results['error']}\n{results['traceback']}")
        code = 1
    results["environment"] = environment()
    results["final_s"] = round(time.time() - t0, 1)
    returned = collect(work, out, results, (work / "run" / "checkpoint.pth") if args.weights else None)
    log(f"{len(returned)} files in {out}: {', '.join(returned)} ({results['final_s']} s)")
    return code


if __name__ == "__main__":
    sys.exit(main())
