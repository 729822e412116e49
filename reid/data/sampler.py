"""Training batch samplers: P x K identity sampling, and the DarkRank batch (cross-camera pairs + singles)."""
from __future__ import annotations

from collections import defaultdict
from typing import Dict, Iterator, List, Optional, Sequence, Union

import numpy as np
import torch.distributed as dist

from ..registry import CHOICES


class SeededEpochs:
    """What every batch sampler here shares: its order is a function of (seed, epoch), so the two numbers are its
    whole state (exact resume) and `set_epoch` picks the epoch (DistributedSampler's convention)."""

    seed: int
    epoch: int

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def state_dict(self) -> Dict[str, int]:
        return {"seed": self.seed, "epoch": self.epoch}

    def load_state_dict(self, state: Dict[str, int]) -> None:
        self.seed, self.epoch = int(state["seed"]), int(state["epoch"])


class PKSampler(SeededEpochs):
    """A batch sampler (pass as `DataLoader(batch_sampler=...)`) yielding lists of P*K dataset indices.

    An epoch visits every identity once, in a random order fixed by (seed, epoch): `len` = ids per rank // P
    batches. Identities with fewer than K images are drawn with replacement. Under torch.distributed the
    identities are dealt round-robin to ranks after the shuffle, so every rank sees different ids and the same
    number of batches. Samples with pid < 0 (junk) are ignored.
    """

    def __init__(self, pids: Sequence[int], p: int, k: int, seed: int = 0, rank: Optional[int] = None,
                 world_size: Optional[int] = None) -> None:
        if p < 1 or k < 1:
            raise ValueError(f"PKSampler: p and k must be >= 1, got p={p}, k={k}")
        distributed = dist.is_available() and dist.is_initialized()
        self.rank = rank if rank is not None else (dist.get_rank() if distributed else 0)
        self.world_size = world_size if world_size is not None else (dist.get_world_size() if distributed else 1)
        self.p, self.k, self.seed, self.epoch = int(p), int(k), int(seed), 0
        self.index: Dict[int, List[int]] = defaultdict(list)
        for i, pid in enumerate(pids):
            if int(pid) >= 0:
                self.index[int(pid)].append(i)
        self.ids = sorted(self.index)
        per_rank = len(self.ids) // self.world_size
        if self.p > per_rank:
            raise ValueError(f"PKSampler: P={self.p} identities per batch but only {per_rank} identities per rank "
                             f"({len(self.ids)} ids, world size {self.world_size})")
        self.ids_per_rank = per_rank

    def __len__(self) -> int:
        return self.ids_per_rank // self.p

    def __iter__(self) -> Iterator[List[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.ids))
        mine = order[self.rank::self.world_size][: self.ids_per_rank]
        for b in range(len(self)):
            batch: List[int] = []
            for j in mine[b * self.p:(b + 1) * self.p]:
                pool = self.index[self.ids[j]]
                pick = rng.choice(len(pool), size=self.k, replace=len(pool) < self.k)
                batch.extend(pool[i] for i in pick)
            yield batch


class DarkRankSampler(SeededEpochs):
    """The DarkRank batch (Chen et al. 2017; the released code's "one good response and batch_size - 2 bad
    responses"): `pairs` cross-camera positive pairs (two images of one identity from two different cameras)
    followed by `singles` single images of other identities. Every identity appears at most once per batch, so each
    paired image (an anchor) has exactly one positive in the batch and the singles have none. Layout:
    [a_1, b_1, a_2, b_2, ..., single_1, ...]; with singles = 2 * pairs the paired images are the first half, which is
    what DarkRank's `anchors="half"` selects (the released code's anchors).

    An epoch visits every identity with images in >= 2 cameras once as a pair, in a random order fixed by
    (seed, epoch): `len` = pair identities per rank // pairs. Singles are drawn at random (one image each) from this
    rank's identities not paired in the batch. Under torch.distributed the pair-capable and the other identities are
    each dealt round-robin to ranks after the shuffle (same batch count on every rank, disjoint identities).
    Samples with pid < 0 (junk) are ignored. `cross_camera=False` pairs any two images of an identity (datasets
    without camera labels).
    """

    def __init__(self, pids: Sequence[int], camids: Sequence[int], pairs: int, singles: int, seed: int = 0,
                 rank: Optional[int] = None, world_size: Optional[int] = None, cross_camera: bool = True) -> None:
        if pairs < 1 or singles < 0:
            raise ValueError(f"DarkRankSampler: need pairs >= 1 and singles >= 0, got pairs={pairs}, singles={singles}")
        if len(pids) != len(camids):
            raise ValueError(f"DarkRankSampler: {len(pids)} pids but {len(camids)} camera ids")
        distributed = dist.is_available() and dist.is_initialized()
        self.rank = rank if rank is not None else (dist.get_rank() if distributed else 0)
        self.world_size = world_size if world_size is not None else (dist.get_world_size() if distributed else 1)
        self.pairs, self.singles, self.seed, self.epoch = int(pairs), int(singles), int(seed), 0
        self.cross_camera = bool(cross_camera)
        self.index: Dict[int, List[int]] = defaultdict(list)
        self.camids: Dict[int, int] = {}
        for i, (pid, cam) in enumerate(zip(pids, camids)):
            if int(pid) >= 0:
                self.index[int(pid)].append(i)
                self.camids[i] = int(cam)
        ids = sorted(self.index)
        self.pair_ids = [pid for pid in ids if self._pairable(pid)]
        self.other_ids = [pid for pid in ids if not self._pairable(pid)]
        self.pairs_per_rank = len(self.pair_ids) // self.world_size
        others_per_rank = len(self.other_ids) // self.world_size
        kind = "images in two or more cameras" if self.cross_camera else "two or more images"
        if self.pairs > self.pairs_per_rank:
            raise ValueError(f"DarkRankSampler: {self.pairs} pairs per batch but only {self.pairs_per_rank} identities "
                             f"with {kind} per rank ({len(self.pair_ids)} such ids, world size {self.world_size})")
        if self.pairs + self.singles > self.pairs_per_rank + others_per_rank:
            raise ValueError(f"DarkRankSampler: a batch needs {self.pairs + self.singles} distinct identities "
                             f"({self.pairs} pairs + {self.singles} singles) but a rank has only "
                             f"{self.pairs_per_rank + others_per_rank} ({len(ids)} ids, world size {self.world_size})")

    def _pairable(self, pid: int) -> bool:
        pool = self.index[pid]
        if self.cross_camera:
            return len({self.camids[i] for i in pool}) >= 2
        return len(pool) >= 2

    def __len__(self) -> int:
        return self.pairs_per_rank // self.pairs

    def _pair(self, pid: int, rng: np.random.Generator) -> List[int]:
        pool = self.index[pid]
        first = pool[int(rng.integers(len(pool)))]
        # the second image: uniform over this identity's images from another camera (any other image without cameras)
        rest = [i for i in pool if (self.camids[i] != self.camids[first] if self.cross_camera else i != first)]
        return [first, rest[int(rng.integers(len(rest)))]]

    def __iter__(self) -> Iterator[List[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        pair_order = rng.permutation(len(self.pair_ids))
        other_order = rng.permutation(len(self.other_ids))
        mine_pairs = [self.pair_ids[j] for j in pair_order[self.rank::self.world_size][: self.pairs_per_rank]]
        others_per_rank = len(self.other_ids) // self.world_size
        mine_others = [self.other_ids[j] for j in other_order[self.rank::self.world_size][:others_per_rank]]
        pool = mine_pairs + mine_others  # this rank's identities: singles never leave the rank's shard
        for b in range(len(self)):
            paired = mine_pairs[b * self.pairs:(b + 1) * self.pairs]
            taken = set(paired)
            candidates = [pid for pid in pool if pid not in taken]
            chosen = rng.choice(len(candidates), size=self.singles, replace=False)
            batch: List[int] = []
            for pid in paired:
                batch.extend(self._pair(pid, rng))
            for j in chosen:
                images = self.index[candidates[j]]
                batch.append(images[int(rng.integers(len(images)))])
            yield batch


SAMPLERS = CHOICES["data.sampler"]  # the batch samplers below (the config's data.sampler values)


def build_batch_sampler(name: str, pids: Sequence[int], camids: Sequence[int], p: int, k: int, seed: int,
                        rank: Optional[int] = None,
                        world_size: Optional[int] = None) -> Union[PKSampler, DarkRankSampler]:
    """The training batch sampler named by `data.sampler`, always with batches of P * K images.

    "pk": `PKSampler` (P identities x K images). "darkrank": `DarkRankSampler` with pairs = P*K // 4 cross-camera
    pairs and singles = P*K - 2 * pairs random singles, so the paired images are the first half of the batch (the
    released code's batch of 8 = 2 pairs + 4 singles for P = 2, K = 4).
    """
    if name == "pk":
        return PKSampler(pids, p=p, k=k, seed=seed, rank=rank, world_size=world_size)
    if name == "darkrank":
        size = int(p) * int(k)
        if size < 4:
            raise ValueError(f"darkrank sampler: P*K = {size} is too small; the batch needs >= 4 images "
                             "(P*K // 4 cross-camera pairs + the rest singles)")
        pairs = size // 4
        return DarkRankSampler(pids, camids, pairs=pairs, singles=size - 2 * pairs, seed=seed, rank=rank,
                               world_size=world_size)
    raise ValueError(f"unknown batch sampler {name!r}; known: {', '.join(SAMPLERS)}")
