#!/usr/bin/env python
"""Render the demo's index.html in headless Chromium, to look at the page as a user's browser shows it.

    python benchmarks/render_demo_page.py                       # PNG at /tmp/reid_demo_page.png
    python benchmarks/render_demo_page.py --png out.png --rerank --threshold 0.5 --keep

Builds everything it needs in a temporary folder: a tiny generated dataset in the Market-1501 layout, a checkpoint
of the small backbone trained for two steps on it (seconds on a CPU: the page's layout, not the model's accuracy, is
what is looked at), then runs the demo (`reid.demo.run_demo`) with a few query images of known ids (so the page
shows protocol roles and top-k accuracy) and screenshots the page with Chromium. Exits with a clear message, before
doing any work, when Chromium is not installed.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import List, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium(explicit: Optional[str]) -> Optional[str]:
    """The Chromium executable: --chromium, else the first of the usual names on PATH, else /usr/bin/chromium."""
    if explicit:
        return explicit if Path(explicit).is_file() else shutil.which(explicit)
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


def train_tiny_checkpoint(data_root: Path, run_dir: Path) -> Path:
    """Two training steps of the small backbone on 64x32 images: a real checkpoint (embedded config, weights)."""
    from reid.config import load_config, save_config
    from reid.engine.trainer import Trainer

    raw = {
        "seed": 0,
        "output_dir": str(run_dir),
        "data": {"dataset": "market1501", "root": str(data_root), "p": 4, "k": 4, "num_workers": 0,
                 "test_batch_size": 64},
        "transforms": {"height": 64, "width": 32},
        "model": {"backbone": "small", "pretrained": "none", "embedding_dim": 32, "classifier": "linear"},
        "loss": {"terms": [{"name": "softmax"}, {"name": "triplet"}]},
        "optim": {"name": "adam", "lr": 1e-3},
        "schedule": {"name": "constant"},
        "train": {"epochs": 1, "iters_per_epoch": 2, "eval_every": 0, "device": "cpu", "log_every": 1,
                  "projector_samples": 0, "ranklist_queries": 0},
    }
    config_path = run_dir.parent / "tiny.yaml"
    save_config(raw, config_path)
    trainer = Trainer(load_config(config_path), progress=False)
    trainer.fit()
    trainer.close()
    return run_dir / "checkpoint.pth"


def pick_queries(query_dir: Path, count: int) -> List[str]:
    """The first image of `count` different identities (names carry id and camera, so the page shows roles)."""
    chosen, seen = [], set()
    for path in sorted(query_dir.glob("*.jpg")):
        pid = path.name.split("_")[0]
        if pid not in seen:
            seen.add(pid)
            chosen.append(str(path))
        if len(chosen) == count:
            break
    return chosen


def screenshot(chromium: str, page: Path, png: Path, width: int, height: int, profile: Path) -> None:
    """Headless Chromium screenshot of a local page; no network, no profile outside `profile`."""
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
           f"--screenshot={png}", f"--window-size={width},{height}", page.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    if proc.returncode != 0 or not png.is_file():
        raise RuntimeError(f"chromium failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--png", default="/tmp/reid_demo_page.png", help="where the screenshot is written")
    parser.add_argument("--chromium", help="Chromium executable (default: found on PATH or /usr/bin/chromium)")
    parser.add_argument("--queries", type=int, default=3, help="query images (of different identities)")
    parser.add_argument("--topk", type=int, default=8, help="gallery images per query")
    parser.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking in the demo")
    parser.add_argument("--threshold", help="the demo's --threshold (marks matches as the same person)")
    parser.add_argument("--size", default="1400,1800", help="browser window WIDTH,HEIGHT in pixels")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (dataset, run, demo page)")
    args = parser.parse_args(argv)

    chromium = find_chromium(args.chromium)
    if chromium is None:  # checked first: without a browser nothing below is worth computing
        tried = (f"--chromium {args.chromium}" if args.chromium
                 else ", ".join(CHROMIUM_NAMES) + " on PATH and /usr/bin/chromium")
        print(f"error: Chromium not found (tried {tried}); install it (e.g. apt-get install chromium) or pass "
              "--chromium PATH", file=sys.stderr)
        return 2
    width, height = (int(v) for v in args.size.split(","))
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no version check over the network

    from reid.data.synthetic import generate
    from reid.demo import run_demo

    work = Path(tempfile.mkdtemp(prefix="reid_demo_page_"))
    try:
        data_root = Path(generate(work / "data", num_ids=16, num_cams=3, seed=1))
        checkpoint = train_tiny_checkpoint(data_root, work / "run")
        queries = pick_queries(data_root / "query", args.queries)
        out = work / "demo"
        run_demo(str(checkpoint), str(data_root / "bounding_box_test"), queries, str(out), topk=args.topk,
                 rerank=args.rerank, device="cpu", threshold=args.threshold, progress=False)
        png = Path(args.png)
        png.parent.mkdir(parents=True, exist_ok=True)
        screenshot(chromium, out / "index.html", png, width, height, work / "chromium_profile")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\nscreenshot of the demo page: {png}" + (f"  (page: {out / 'index.html'})" if args.keep else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
