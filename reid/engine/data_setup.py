"""A run's data path from its config: which pipeline, where the decoded-image cache lives, bad files up front.

The tensor pipeline decodes each split once (`reid.data.cache`) and augments whole batches on the model's
device; it is used unless the config asks for the albumentations pipeline, a transform has no batched form
(`random_resized_crop`) or a split's decoded images exceed `data.cache_max_gb`. Either way every image of the
training split, and of the query/gallery splits when the run evaluates, is checked before the first step: one
error lists all bad files (`data.on_error=raise`), or they are left out with one warning (`skip`, training only:
an evaluation never silently drops a query or gallery image).

`SplitImages` is the policy applied to a run's splits, shared by training (`TrainingData`) and `tools/test.py`
(`reid.engine.tester.EvalImages`), which reads its query/gallery splits from the same cache.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from ..data.batch_augment import uses_tensor_pipeline
from ..config import ConfigError
from ..data.cache import DecodedImages, decode_split, default_cache_dir, writable_folder_problem
from ..data.image_io import apply_error_policy, check_images
from ..data.loader import build_test_loader
from ..data.sampler import build_batch_sampler
from ..data.train_loader import build_train_loader
from ..data.transforms import resolve
from ..utils.progress import progress as progress_bar


BadFiles = List[Tuple[str, str]]  # (path, reason), as check_images gives them


def choose_pipeline(data_cfg: Mapping[str, Any], transform_cfg: Any,
                    log: Optional[Callable[[str], None]] = None) -> str:
    """`data.pipeline`, or "albumentations" (said through `log`) when a transform has no batched form."""
    pipeline = data_cfg["pipeline"]
    if pipeline == "tensor" and not uses_tensor_pipeline(transform_cfg):
        if log is not None:
            log("transforms.random_resized_crop has no batched form: using the albumentations pipeline")
        return "albumentations"
    return pipeline


def cache_folder(data_cfg: Mapping[str, Any], run_dir: Path) -> Optional[Path]:
    """`data.cache_dir` resolved: None for "off" (decode in memory, write nothing), the path given, or by default
    `<data.root>/.reid_cache` (`<run_dir>/cache` when the data root cannot be written). An unquoted `off` in
    YAML or in a command-line override (`data.cache_dir=off`) is read as false, and means "off" too."""
    cache_dir = data_cfg["cache_dir"]
    if cache_dir == "off" or cache_dir is False:
        return None
    if not cache_dir:
        return default_cache_dir(data_cfg["root"], run_dir)
    folder = Path(cache_dir)
    problem = writable_folder_problem(folder)
    if problem is not None:  # found before any decoding, as one error naming the key (not a traceback later)
        raise ConfigError(f"data.cache_dir={cache_dir}: {problem}; expected a folder this user can write, or "
                          "data.cache_dir=off to keep the decoded images in memory")
    return folder


def decode_checked(samples: Sequence[Any], split: str, height: int, width: int, cache_dir: Optional[Path],
                   max_gb: float, log: Callable[[str], None], progress: bool = True,
                   hash_by: str = "stat") -> Tuple[Optional[DecodedImages], BadFiles]:
    """`split` decoded (`reid.data.cache.decode_split`) and its bad files as [(path, reason)]; the images are None
    when the split exceeds `max_gb` (it is then read per file, and its files are checked without decoding)."""
    paths = [s.path for s in samples]
    wrap = (lambda it, total, desc: progress_bar(it, desc, enabled=progress, total=total, log=log))
    decoded, bad = decode_split(paths, height, width, cache_dir=cache_dir, max_gb=float(max_gb),
                                threads=torch.get_num_threads(), progress=wrap, desc=f"decoding {split}",
                                hash_by=hash_by, log=log)
    if decoded is None:
        log(f"decoded {split} split exceeds data.cache_max_gb={max_gb}: "
            "reading it per file" + (" (albumentations pipeline)" if split == "train" else ""))
        return None, check_images(paths)
    if decoded.file is not None:
        # the cache can be GBs next to the data (full Market at 256x128: ~3.5 GB): say how big, where, and how to
        # move or remove it
        size = decoded.images.nbytes
        shown = f"{size / 1e9:.1f} GB" if size >= 1e8 else f"{size / 1e6:.1f} MB"
        log(f"{split}: {len(decoded)} decoded images at {height}x{width} in {decoded.file} ({shown}; "
            f"data.cache_dir=PATH puts the cache elsewhere, data.cache_dir=off keeps it in memory; deleting "
            f"{decoded.file.parent} only costs a rebuild)")
    prefix = "cannot read image "  # the reason alone, as check_images gives it (the path is listed beside it)
    return decoded, [(paths[i], reason.split(": ", 1)[-1] if reason.startswith(prefix + paths[i]) else reason)
                     for i, reason in bad]


class SplitImages:
    """A run's splits under its data policy: the pipeline, the decoded-image cache, each split decoded once with
    its bad files found, and ordered test loaders over them. The test half of a run's data, written once: the
    training run (`TrainingData`) and tools/test.py (`reid.engine.tester.EvalImages`) are this class.

    `cache_always`: resolve `data.cache_dir` (and so refuse an unusable one) on either pipeline, as training does;
    otherwise only on the tensor pipeline, the only one that decodes into it.
    """

    def __init__(self, cfg: Mapping[str, Any], run_dir: Path, log: Callable[[str], None], progress: bool = True,
                 cache_always: bool = True) -> None:
        self.cfg = cfg
        self.data = cfg["data"]
        self.transform_cfg = cfg["transforms"]
        self.progress = progress
        self.log = log
        size = resolve(self.transform_cfg)
        self.height, self.width = int(size["height"]), int(size["width"])
        self.pipeline = choose_pipeline(self.data, self.transform_cfg, log)
        self.cache_dir = cache_folder(self.data, run_dir) if cache_always or self.pipeline == "tensor" else None
        self.decoded: Dict[str, DecodedImages] = {}  # split -> its decoded images, for the splits decoded

    def decode(self, samples: Sequence[Any], split: str) -> BadFiles:
        """Decode `split` (tensor pipeline) and return its bad files as [(path, reason)]."""
        decoded, bad = decode_checked(samples, split, self.height, self.width, self.cache_dir,
                                      self.data["cache_max_gb"], self.log, self.progress,
                                      self.data.get("cache_hash", "stat"))
        if decoded is None:  # over budget: this split is read per file (training then uses albumentations)
            if split == "train":
                self.pipeline = "albumentations"
            return bad
        self.decoded[split] = decoded
        return bad

    def check_split(self, samples: Sequence[Any], split: str, check_files: bool = True) -> None:
        """An evaluated split decoded now (tensor pipeline), or its files checked (`check_files`, albumentations);
        a bad file is an error whatever data.on_error says: an evaluation never silently drops an image."""
        if self.pipeline == "tensor":
            bad = self.decode(samples, split)
        elif check_files:
            bad = check_images(s.path for s in samples)
        else:
            return
        apply_error_policy(samples, bad, "raise", split)

    def test_loader(self, samples: Sequence[Any], split: Optional[str], num_workers: int = 0):
        """An ordered loader over `samples`: from `split`'s decoded images when they are these samples'."""
        decoded = self.decoded.get(split) if split else None
        if decoded is not None and len(decoded) != len(samples):
            decoded = None
        return build_test_loader(samples, self.transform_cfg, batch_size=self.data["test_batch_size"],
                                 num_workers=num_workers, decoded=decoded)

    def close(self) -> None:
        self.decoded.clear()  # releases the memory maps


class TrainingData(SplitImages):
    """Decoded splits and loaders of one training run."""

    def __init__(self, cfg: Mapping[str, Any], run_dir: Path, device: torch.device, monitor: Any,
                 progress: bool = True) -> None:
        super().__init__(cfg, run_dir, monitor.log, progress)
        self.device = device
        self.monitor = monitor

    def filter_train(self, samples: Sequence[Any]) -> List[Any]:
        """The training samples after the bad-file policy (decoding them first on the tensor pipeline)."""
        samples = list(samples)
        bad = self.decode(samples, "train") if self.pipeline == "tensor" else check_images(s.path for s in samples)
        kept = apply_error_policy(samples, bad, self.data["on_error"])
        if len(kept) != len(samples) and "train" in self.decoded:
            bad_paths = {p for p, _ in bad}
            rows = [i for i, s in enumerate(samples) if s.path not in bad_paths]
            self.decoded["train"] = DecodedImages(self.decoded["train"].images[rows], None)
        return kept

    def check_test_splits(self, dataset: Any) -> None:
        """Query and gallery images checked (and decoded) now; a bad one is an error whatever data.on_error says."""
        for split in ("query", "gallery"):
            self.check_split(getattr(dataset, split), split)

    def train_loader(self, samples: Sequence[Any], rank: int, world: int, channels_last: bool = False):
        sampler = build_batch_sampler(self.data["sampler"], [s.pid for s in samples], [s.camid for s in samples],
                                      self.data["p"], self.data["k"], self.cfg["seed"], rank=rank, world_size=world)
        return build_train_loader(
            samples, self.transform_cfg, seed=self.cfg["seed"], pipeline=self.pipeline,
            decoded=self.decoded.get("train"), device=self.device, num_workers=self.data["num_workers"],
            on_error=self.data["on_error"], iters_per_epoch=self.cfg["train"]["iters_per_epoch"],
            batch_sampler=sampler, channels_last=channels_last)
