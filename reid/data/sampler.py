"""P x K identity sampling: every batch holds P identities with K images each."""
from __future__ import annotations

from collections import defaultdict
from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np
import torch.distributed as dist


class PKSampler:
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

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

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

    def state_dict(self) -> Dict[str, int]:
        return {"seed": self.seed, "epoch": self.epoch}

    def load_state_dict(self, state: Dict[str, int]) -> None:
        self.seed, self.epoch = int(state["seed"]), int(state["epoch"])
