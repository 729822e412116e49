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


# ---------------------------------------------------------------- DarkRank batches (cross-camera pairs + singles)
from reid.data.sampler import DarkRankSampler, build_batch_sampler  # noqa: E402

# 24 identities: pid % 4 == 0 seen by one camera only (never paired), the others by 2-3 cameras; plus junk.
DR_PIDS, DR_CAMS = [], []
for _pid in range(24):
    for _j in range(2 + _pid % 3):
        DR_PIDS.append(_pid)
        DR_CAMS.append(0 if _pid % 4 == 0 else _j % (2 + _pid % 2))
DR_PIDS += [-1, -1]
DR_CAMS += [0, 1]
PAIRABLE = {pid for pid in range(24) if pid % 4}


def _check_darkrank(batches, pairs, singles):
    for batch in batches:
        assert len(batch) == 2 * pairs + singles
        ids = [DR_PIDS[i] for i in batch]
        assert min(ids) >= 0
        for a in range(2 * pairs):  # every anchor (paired image) has exactly one positive in the batch: its partner
            positives = [j for j in range(len(batch)) if j != a and ids[j] == ids[a]]
            assert positives == [a ^ 1]
        for a in range(0, 2 * pairs, 2):  # the pair is cross-camera, two different images
            assert batch[a] != batch[a + 1] and DR_CAMS[batch[a]] != DR_CAMS[batch[a + 1]]
            assert ids[a] in PAIRABLE
        for j in range(2 * pairs, len(batch)):  # singles have no positive
            assert ids.count(ids[j]) == 1


def test_darkrank_batches_pairs_then_singles():
    sampler = DarkRankSampler(DR_PIDS, DR_CAMS, pairs=3, singles=6, seed=0)
    batches = list(sampler)
    assert len(batches) == len(sampler) == len(PAIRABLE) // 3
    _check_darkrank(batches, 3, 6)
    paired = Counter(DR_PIDS[b[a]] for b in batches for a in range(0, 6, 2))
    assert max(paired.values()) == 1 and len(paired) == len(PAIRABLE)  # each pairable id paired once per epoch


def test_darkrank_deterministic_per_seed_and_epoch_and_resume():
    a, b = DarkRankSampler(DR_PIDS, DR_CAMS, 2, 4, seed=3), DarkRankSampler(DR_PIDS, DR_CAMS, 2, 4, seed=3)
    first = list(a)
    assert first == list(b)
    a.set_epoch(1)
    second = list(a)
    assert second != first and list(DarkRankSampler(DR_PIDS, DR_CAMS, 2, 4, seed=4)) != first
    _check_darkrank(second, 2, 4)
    c = DarkRankSampler(DR_PIDS, DR_CAMS, 2, 4)
    c.load_state_dict(a.state_dict())
    assert list(c) == second


def test_darkrank_rank_shards_disjoint_same_length():
    shards = [DarkRankSampler(DR_PIDS, DR_CAMS, 2, 2, seed=1, rank=r, world_size=3) for r in range(3)]
    assert len({len(s) for s in shards}) == 1 and len(shards[0]) == (len(PAIRABLE) // 3) // 2
    ids = [{DR_PIDS[i] for b in s for i in b} for s in shards]
    for r in range(3):
        _check_darkrank(list(shards[r]), 2, 2)
        for q in range(r + 1, 3):
            assert not ids[r] & ids[q]


def test_darkrank_without_cameras_and_errors():
    one_cam = [0] * len(DR_PIDS)
    with pytest.raises(ValueError, match="2 pairs per batch but only 0 identities with images in two or more cam"):
        DarkRankSampler(DR_PIDS, one_cam, 2, 4)
    batches = list(DarkRankSampler(DR_PIDS, one_cam, 2, 4, cross_camera=False))
    assert len(batches) == 24 // 2
    for batch in batches:
        assert batch[0] != batch[1] and DR_PIDS[batch[0]] == DR_PIDS[batch[1]]
    with pytest.raises(ValueError, match="needs 25 distinct identities"):
        DarkRankSampler(DR_PIDS, DR_CAMS, 2, 23)
    with pytest.raises(ValueError, match="pairs=0"):
        DarkRankSampler(DR_PIDS, DR_CAMS, 0, 4)


def test_build_batch_sampler_names_and_mapping():
    pk = build_batch_sampler("pk", DR_PIDS, DR_CAMS, p=3, k=2, seed=0)
    assert isinstance(pk, PKSampler) and list(pk) == list(PKSampler(DR_PIDS, 3, 2, seed=0))
    dr = build_batch_sampler("darkrank", DR_PIDS, DR_CAMS, p=2, k=4, seed=0, rank=0, world_size=1)
    assert isinstance(dr, DarkRankSampler) and (dr.pairs, dr.singles) == (2, 4)  # the released batch of 8
    _check_darkrank(list(dr), 2, 4)
    odd = build_batch_sampler("darkrank", DR_PIDS, DR_CAMS, p=3, k=3, seed=0)
    assert (odd.pairs, odd.singles) == (2, 5) and all(len(b) == 9 for b in odd)
    with pytest.raises(ValueError, match="unknown batch sampler 'dark'; known: pk, darkrank"):
        build_batch_sampler("dark", DR_PIDS, DR_CAMS, 2, 4, 0)
    with pytest.raises(ValueError, match="P\\*K = 3"):
        build_batch_sampler("darkrank", DR_PIDS, DR_CAMS, 1, 3, 0)
