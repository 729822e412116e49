#!/usr/bin/env python
"""Progress of the detached training run of studies/gpu/start.sh, read from its train.log (keep-alive calls).

    python3 studies/gpu/status.py --work /root/reid_gpu                     # one status line
    python3 studies/gpu/status.py --work /root/reid_gpu --follow 300        # a line every 30 s for up to 300 s,
                                                                              # returning as soon as training ends

A line: running/finished/STOPPED, epoch and iteration, img/s (overall since the first step and over the last
epochs), elapsed and ETA, the last loss and lr, GPU utilisation and memory (nvidia-smi, when present). Exit code 0
while running or finished, 1 when the process is gone without "training done" (the tail of run.log is printed).
Standard library + PyYAML only.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

STAMP = r"(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})"
START = re.compile(STAMP + r" training (\S+) on (\S+): (\d+) images, (\d+) ids, (\d+) batches/epoch, (\S+) pipeline, "
                   r"device (\S+)")
EPOCH = re.compile(STAMP + r" epoch (\d+): (.*)$")  # end of an epoch: "epoch 3: total 0.51, ..., lr 1.00e-03"
PROGRESS = re.compile(STAMP + r" epoch (\d+)/(\d+): (\d+)(?:/(\d+))?, .*?(?:([\d.]+) it/s|([\d.]+) s/it)(.*)$")
DONE = re.compile(STAMP + r" training done in ([\d.]+) s")
RECENT_EPOCHS = 5


def _time(stamp: str) -> float:
    return time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S"))


def _fmt(seconds: Optional[float]) -> str:
    if seconds is None:
        return "?"
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}"


def pid_alive(pid: Optional[int]) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - another user's process
        return True
    try:  # a zombie (exited, not yet reaped) counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


def read_pid(work: Path) -> Optional[int]:
    try:
        return int((work / "train.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def run_config(run_dir: Path) -> Dict[str, Any]:
    try:
        import yaml

        return yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    except Exception:  # noqa: BLE001 - not written yet
        return {}


def parse_log(text: str) -> Dict[str, Any]:
    """What train.log says so far: start, epoch ends (time, values), the last progress line, done."""
    info: Dict[str, Any] = {"epochs_done": [], "progress": None, "start": None, "done_s": None}
    for line in text.splitlines():
        m = START.match(line)
        if m:
            info["start"] = {"time": _time(m.group(1)), "backbone": m.group(2), "images": int(m.group(4)),
                             "ids": int(m.group(5)), "batches_per_epoch": int(m.group(6)),
                             "pipeline": m.group(7), "device": m.group(8)}
            info["epochs_done"], info["progress"] = [], None  # a restarted run: count afresh
            continue
        m = DONE.match(line)
        if m:
            info["done_s"] = float(m.group(2))
            info["done_time"] = _time(m.group(1))
            continue
        m = PROGRESS.match(line)
        if m:
            rate = float(m.group(6)) if m.group(6) else 1.0 / float(m.group(7))
            info["progress"] = {"time": _time(m.group(1)), "epoch": int(m.group(2)), "batch": int(m.group(4)),
                                "it_s": rate, "rest": m.group(8).strip(", ")}
            continue
        m = EPOCH.match(line)
        if m:
            values = dict(re.findall(r"(\S+) ([-\d.e+naif]+)(?:,|$)", m.group(3)))
            info["epochs_done"].append({"time": _time(m.group(1)), "epoch": int(m.group(2)), "values": values})
    return info


def read_status(work: Path, now: Optional[float] = None) -> Dict[str, Any]:
    """The run's state as a dict (also embedded in final.py's results JSON)."""
    now = time.time() if now is None else now
    run_dir = work / "run"
    log = run_dir / "train.log"
    info = parse_log(log.read_text(errors="replace") if log.is_file() else "")
    cfg = run_config(run_dir)
    pid = read_pid(work)
    alive = pid_alive(pid)
    status: Dict[str, Any] = {"pid": pid, "alive": alive, "finished": info["done_s"] is not None}
    train = cfg.get("train", {}) if isinstance(cfg, dict) else {}
    data = cfg.get("data", {}) if isinstance(cfg, dict) else {}
    batch = int(data.get("p", 0) or 0) * int(data.get("k", 0) or 0) or None
    epochs = train.get("epochs")
    start = info["start"]
    per_epoch = start["batches_per_epoch"] if start else train.get("iters_per_epoch")
    status.update(epochs=epochs, batch=batch, batches_per_epoch=per_epoch)
    status["state"] = ("finished" if status["finished"] else "running" if alive
                       else "STOPPED" if pid else "not started")
    if not start:
        status["phase"] = "setting up (dataset, decoded cache, model)" if alive else None
        return status
    done = info["epochs_done"]
    epoch_done = done[-1]["epoch"] if done else 0
    iteration = epoch_done * per_epoch
    prog = info["progress"]
    if prog and prog["epoch"] == epoch_done + 1 and (not done or prog["time"] >= done[-1]["time"]):
        iteration += prog["batch"]
    total = epochs * per_epoch if epochs and per_epoch else None
    end = info.get("done_time") if status["finished"] else (done[-1]["time"] if done else None)
    elapsed = (info["done_s"] if status["finished"] else now - start["time"])
    status.update(epoch=epoch_done, iteration=iteration, iterations=total, elapsed_s=round(elapsed, 1),
                  device=start["device"], pipeline=start["pipeline"], images=start["images"], ids=start["ids"])
    it_s = None
    if end is not None and epoch_done and end > start["time"]:
        it_s = epoch_done * per_epoch / (end - start["time"])
    if status["finished"] and total and info["done_s"]:
        it_s = total / info["done_s"]
    recent = None
    if len(done) > RECENT_EPOCHS:
        a, b = done[-1 - RECENT_EPOCHS], done[-1]
        if b["time"] > a["time"]:
            recent = (b["epoch"] - a["epoch"]) * per_epoch / (b["time"] - a["time"])
    elif prog and prog["it_s"]:
        recent = prog["it_s"]
    rate = recent or it_s
    if batch:
        status["img_s"] = round(it_s * batch, 1) if it_s else None
        status["img_s_recent"] = round(recent * batch, 1) if recent else None
    status["it_s"] = round(it_s, 3) if it_s else None
    if total and rate and not status["finished"]:
        status["eta_s"] = round(max(0.0, (total - iteration) / rate), 1)
    if done:
        status["last"] = done[-1]["values"]
    return status


def gpu_line() -> str:
    if not shutil.which("nvidia-smi"):
        return ""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10).stdout.strip().splitlines()
    except (OSError, subprocess.SubprocessError):
        return ""
    if not out:
        return ""
    util, mem = [s.strip() for s in out[0].split(",")[:2]]
    return f"GPU {util}% {float(mem) / 1024:.1f} GiB"


def format_status(s: Dict[str, Any]) -> str:
    parts = [f"[status {time.strftime('%H:%M:%S')}] {s['state']}" + (f" (pid {s['pid']})" if s.get("pid") else "")]
    if "iteration" not in s:
        if s.get("phase"):
            parts.append(s["phase"])
        return " | ".join(parts)
    total = s.get("iterations")
    pct = f" ({100.0 * s['iteration'] / total:.1f}%)" if total else ""
    parts.append(f"epoch {s['epoch']}/{s.get('epochs')}, iteration {s['iteration']}/{total}{pct}")
    if s.get("img_s") or s.get("img_s_recent"):
        parts.append(f"{s.get('img_s') or '?'} img/s overall, {s.get('img_s_recent') or '?'} recent")
    parts.append(f"elapsed {_fmt(s['elapsed_s'])}" + ("" if s["finished"] else f", ETA {_fmt(s.get('eta_s'))}"))
    if s.get("last"):
        parts.append(", ".join(f"{k} {v}" for k, v in s["last"].items()))
    gpu = gpu_line()
    if gpu:
        parts.append(gpu)
    return " | ".join(parts)


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"({path} not found)"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="/root/reid_gpu", help="the folder start.sh used (default /root/reid_gpu)")
    parser.add_argument("--follow", type=float, default=0.0,
                        help="keep printing for up to this many seconds; return early when training ends")
    parser.add_argument("--every", type=float, default=30.0, help="seconds between lines with --follow")
    parser.add_argument("--json", action="store_true", help="print the status dict as JSON instead")
    args = parser.parse_args(argv)
    work = Path(args.work)
    deadline = time.time() + args.follow
    while True:
        s = read_status(work)
        print(json.dumps(s) if args.json else format_status(s), flush=True)
        if s["state"] in ("finished", "STOPPED") or time.time() + 1e-3 >= deadline:
            break
        time.sleep(max(0.1, min(args.every, deadline - time.time())))
    if s["state"] == "STOPPED":
        print(f"training process is gone without 'training done'; the end of {work / 'run.log'}:\n"
              f"{tail(work / 'run.log')}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
