"""PKSampler invariants: batch shape, identity purity, sharding, determinism, resume, errors."""
from collections import Counter

import pytest

from reid.data.sampler import PKSampler

# 10 identities with 1..5 images each (pid 3 has a single image), plus two junk samples.
PIDS = [pid for pid in range(10) for _ in range(1 + pid % 5)] + [-1, -1]


def _check_batches(sampler, p, k):
    batches = list(sampler)
    assert len(batches) == len(sampler)
    for batch in batches:
        assert len(batch) == p * k
        ids = [PIDS[i] for i in batch]
        assert min(ids) >= 0  # junk never sampled
        groups = [ids[j * k:(j + 1) * k] for j in range(p)]
        assert all(len(set(g)) == 1 for g in groups)  # each id's K indices belong to it
        assert len({g[0] for g in groups}) == p  # no id repeated within a batch
    return batches


def test_batches_are_p_by_k_and_cover_ids_once_per_epoch():
    sampler = PKSampler(PIDS, p=3, k=4)
    assert len(sampler) == 10 // 3
    batches = _check_batches(sampler, 3, 4)
    seen = Counter(PIDS[b[j * 4]] for b in batches for j in range(3))
    assert max(seen.values()) == 1  # an epoch visits each identity at most once


def test_replacement_when_k_exceeds_images():
    sampler = PKSampler(PIDS, p=10, k=6)
    (batch,) = _check_batches(sampler, 10, 6)
    single = [i for i in batch if PIDS[i] == 0]  # pid 0 has one image: index 0 six times
    assert single == [0] * 6


def test_same_seed_epoch_same_order_other_epoch_differs():
    a, b = PKSampler(PIDS, 2, 2, seed=5), PKSampler(PIDS, 2, 2, seed=5)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
    assert list(PKSampler(PIDS, 2, 2, seed=6)) != first


def test_state_dict_resume():
    a = PKSampler(PIDS, 2, 3, seed=7)
    a.set_epoch(4)
    expected = list(a)
    b = PKSampler(PIDS, 2, 3)
    b.load_state_dict(a.state_dict())
    assert b.state_dict() == {"seed": 7, "epoch": 4}
    assert list(b) == expected


def test_rank_shards_disjoint_same_length():
    shards = [PKSampler(PIDS, 2, 2, seed=1, rank=r, world_size=3) for r in range(3)]
    assert len({len(s) for s in shards}) == 1 and len(shards[0]) == (10 // 3) // 2
    ids = [{PIDS[i] for b in s for i in b} for s in shards]
    for r in range(3):
        _check_batches(shards[r], 2, 2)
        for q in range(r + 1, 3):
            assert not ids[r] & ids[q]


def test_errors_name_the_numbers():
    with pytest.raises(ValueError, match="P=11.*10 identities"):
        PKSampler(PIDS, 11, 2)
    with pytest.raises(ValueError, match="P=4.*3 identities per rank"):
        PKSampler(PIDS, 4, 2, rank=0, world_size=3)
    with pytest.raises(ValueError, match="k=0"):
        PKSampler(PIDS, 2, 0)
