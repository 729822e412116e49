"""CMC / AP / mINP against a naive per-query loop; streaming == dense; protocols; bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from naive_references import naive_rank_metrics
from reid.evaluation import EvaluationResult, clustering_nmi, evaluate, nmi, recall_at_k


def random_case(seed, nq=25, ng=120, dim=6, cameras=True, ties=False):
    rng = np.random.default_rng(seed)
    qf = torch.from_numpy(rng.normal(size=(nq, dim)).astype(np.float32))
    gf = torch.from_numpy(rng.normal(size=(ng, dim)).astype(np.float32))
    if ties:  # exact duplicates make equal distances
        gf[1::3] = gf[::3][: len(gf[1::3])]
        gf = torch.round(gf)
        qf = torch.round(qf)
    qp = rng.integers(1, 8, nq)
    gp = rng.integers(-1, 8, ng)  # includes junk (-1) and background (0)
    qc = rng.integers(0, 3, nq) if cameras else None
    gc = rng.integers(0, 3, ng) if cameras else None
    return qf, gf, qp, gp, qc, gc


@pytest.fixture(params=["numba", "torch"])
def backend(request, monkeypatch):
    """Run a test with the compiled rank counting and with its torch fallback (used where numba is missing)."""
    from reid.evaluation import rank_count

    if request.param == "numba" and rank_count.numba is None:
        pytest.skip("numba is not installed")
    if request.param == "torch":
        monkeypatch.setattr(rank_count, "numba", None)
    return request.param


def dense(qf, gf):
    return ((qf[:, None] - gf[None]) ** 2).sum(-1).numpy().astype(np.float64)


@pytest.mark.parametrize("ap", ["mean", "official"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_naive_loop(ap, seed, backend):
    qf, gf, qp, gp, qc, gc = random_case(seed)
    d = evaluate(None, None, qp, gp, qc, gc, distmat=dense(qf, gf), ap=ap, max_rank=20)
    cmc, m, inp, skipped = naive_rank_metrics(dense(qf, gf), qp, gp, qc, gc, ap=ap)
    np.testing.assert_allclose(d.cmc, cmc, atol=1e-12)
    assert d.mAP == pytest.approx(m, abs=1e-9) and d.mINP == pytest.approx(inp, abs=1e-9)
    assert d.num_skipped == skipped


@pytest.mark.parametrize("chunks", [(7, 33), (4, 13), (1000, 100000)])
def test_streaming_equals_dense(chunks, backend):
    qf, gf, qp, gp, qc, gc = random_case(3, nq=40, ng=301)
    streamed = evaluate(qf, gf, qp, gp, qc, gc, chunk_size=chunks[0], gallery_chunk=chunks[1], max_rank=30)
    dist = torch.cdist(qf.double(), gf.double()).pow(2).numpy()
    cmc, m, inp, _ = naive_rank_metrics(dist, qp, gp, qc, gc, max_rank=30)
    np.testing.assert_allclose(streamed.cmc, cmc)
    assert streamed.mAP == pytest.approx(m, abs=1e-6)


def test_ties_are_broken_by_gallery_order(backend):
    qf, gf, qp, gp, qc, gc = random_case(4, ties=True)
    d = dense(qf, gf)
    assert len(np.unique(d[0])) < d.shape[1]  # the case really has ties
    for kwargs in ({"distmat": d}, {"gallery_chunk": 17, "chunk_size": 5}):
        args = (None, None) if "distmat" in kwargs else (qf, gf)
        res = evaluate(*args, qp, gp, qc, gc, max_rank=20, **kwargs)
        cmc, m, _, _ = naive_rank_metrics(d, qp, gp, qc, gc)
        np.testing.assert_allclose(res.cmc, cmc)
        assert res.mAP == pytest.approx(m, abs=1e-9)


def test_background_kept_junk_removed(backend):
    # query id 1 cam 0; gallery: junk nearest, background next, then the true match in camera 1.
    dist = np.array([[0.1, 0.2, 0.3, 0.4]])
    res = evaluate(None, None, [1], [-1, 0, 1, 1], [0], [1, 1, 1, 0], distmat=dist)
    # junk removed; same-id same-camera (last) removed; background ranks first -> match at rank 2
    assert res.rank(1) == 0.0 and res.rank(2) == 1.0 and res.mAP == pytest.approx(0.5)


def test_no_camera_dataset_removes_only_the_query_itself(backend):
    qf, gf, qp, gp, _, _ = random_case(5, cameras=False)
    qig = np.full(len(qp), -1)
    gf = gf.clone()
    for i in range(0, len(qp), 2):  # half the queries also sit in the gallery
        gf[i] = qf[i]
        gp[i] = qp[i]
        qig[i] = i
    cmc, m, _, _ = naive_rank_metrics(dense(qf, gf), qp, gp, None, None, qig=qig)
    for chunks in ({}, {"chunk_size": 4, "gallery_chunk": 13}):  # the query's own item in any gallery block
        res = evaluate(qf, gf, qp, gp, query_in_gallery=qig, max_rank=20, **chunks)
        np.testing.assert_allclose(res.cmc, cmc, atol=1e-12)
        assert res.mAP == pytest.approx(m, abs=1e-6)


def test_blocks_wider_than_the_counter_limit_are_split(backend, monkeypatch):
    from reid.evaluation import metrics

    qf, gf, qp, gp, qc, gc = random_case(7, nq=30, ng=200, ties=True)
    whole = evaluate(None, None, qp, gp, qc, gc, distmat=dense(qf, gf), max_rank=20)
    monkeypatch.setattr(metrics, "MAX_WIDTH", 7)  # stands for 2**22 columns: counts are exact below 2**24
    split = evaluate(None, None, qp, gp, qc, gc, distmat=dense(qf, gf), max_rank=20)
    np.testing.assert_array_equal(split.cmc, whole.cmc)
    assert split.mAP == whole.mAP and split.mINP == whole.mINP


def test_float64_distances_are_not_rounded_to_float32(backend):
    # 1 + 1e-9 and 1 are one float32 value: rounding would tie them and gallery order would put the negative first
    dist = np.array([[0.5, 1.0 + 1e-9, 1.0]])
    res = evaluate(None, None, [1], [1, 1, 2], [0], [1, 1, 1], distmat=dist)
    assert res.cmc[:3].tolist() == [1.0, 1.0, 1.0] and res.mAP == pytest.approx((1 + 2 / 3) / 2)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_distance_matrix_is_refused(backend, bad):
    dist = np.random.default_rng(0).random((5, 9))
    dist[3, 7] = bad
    with pytest.raises(ValueError, match="queries 0..4 contain 1 NaN or inf"):
        evaluate(None, None, [1] * 5, [1, 2] * 4 + [1], [0] * 5, [1] * 9, distmat=dist)


def test_empty_queries_skipped_or_counted():
    dist = np.array([[0.1, 0.2], [0.3, 0.1]])
    skip = evaluate(None, None, [1, 9], [1, 2], [0, 0], [1, 1], distmat=dist)
    zero = evaluate(None, None, [1, 9], [1, 2], [0, 0], [1, 1], distmat=dist, empty="zero")
    assert skip.num_queries == 1 and skip.num_skipped == 1 and skip.mAP == 1.0
    assert zero.num_queries == 2 and zero.mAP == 0.5 and zero.rank(1) == 0.5


def test_single_shot_is_seeded_and_matches_manual_trials():
    qf, gf, qp, gp, qc, gc = random_case(6, ng=80)
    gp = np.abs(gp) + 1
    a = evaluate(qf, gf, qp, gp, qc, gc, protocol="single-shot", trials=5, seed=3, max_rank=10)
    b = evaluate(qf, gf, qp, gp, qc, gc, protocol="single-shot", trials=5, seed=3, max_rank=10)
    c = evaluate(qf, gf, qp, gp, qc, gc, protocol="single-shot", trials=5, seed=4, max_rank=10)
    assert a.mAP == b.mAP and np.array_equal(a.cmc, b.cmc) and a.mAP != c.mAP
    d = dense(qf, gf)
    maps = []
    for t in range(5):
        rng = np.random.default_rng([3, t])
        keep = np.sort([rng.choice(np.flatnonzero(gp == pid)) for pid in np.unique(gp)])
        maps.append(naive_rank_metrics(d[:, keep], qp, gp[keep], qc, gc[keep], max_rank=10)[1])
    assert a.mAP == pytest.approx(np.mean(maps), abs=1e-9)


def test_float16_features_give_the_float32_result():
    qf, gf, qp, gp, qc, gc = random_case(7)
    half = evaluate(qf.half(), gf.half(), qp, gp, qc, gc)
    ref = evaluate(qf.half().float(), gf.half().float(), qp, gp, qc, gc)
    assert half.mAP == ref.mAP


def test_recall_at_k_and_nmi_against_naive():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(40, 4)).astype(np.float32))
    y = rng.integers(0, 5, 40)
    got = recall_at_k(x, y, ks=(1, 4))
    d = torch.cdist(x, x).numpy()
    np.fill_diagonal(d, np.inf)
    for k in (1, 4):
        nn = np.argsort(d, axis=1)[:, :k]
        assert got[k] == pytest.approx(np.mean([(y[nn[i]] == y[i]).any() for i in range(40)]))
    assert nmi([0, 0, 1, 1], [5, 5, 7, 7]) == pytest.approx(1.0)
    assert nmi([0, 1, 0, 1], [0, 0, 1, 1]) == pytest.approx(0.0, abs=1e-12)
    centers = torch.tensor([[0.0, 0], [10, 10], [-10, 10]])
    pts = torch.cat([c + 0.1 * torch.randn(10, 2) for c in centers])
    assert clustering_nmi(pts, np.repeat([0, 1, 2], 10)) == pytest.approx(1.0)


def test_result_table_and_json(tmp_path):
    res = EvaluationResult(cmc=np.linspace(0.5, 1, 50), mAP=0.4, mINP=0.1, num_queries=3, num_skipped=1)
    assert "Rank-1" in res.table() and "40.00%" in res.table()
    import json

    data = json.loads(res.save_json(tmp_path / "r.json").read_text())
    assert data["mAP"] == 0.4 and data["num_skipped"] == 1 and len(data["cmc"]) == 50


@pytest.mark.parametrize("case,match", [
    ("length", "q_pids has 3 entries but there are 4"),
    ("nan", "NaN or inf"),
    ("empty", "empty"),
    ("dims", "4-d but gallery features are 5-d"),
    ("nomatch", "no query has a valid gallery match"),
])
def test_bad_input(case, match):
    qf, gf = torch.randn(4, 4), torch.randn(6, 4)
    qp, gp, qc, gc = [1, 2, 3, 4], [1, 2, 3, 4, 5, 6], [0] * 4, [1] * 6
    if case == "length":
        qp = qp[:3]
    elif case == "nan":
        qf[0, 0] = float("nan")
    elif case == "empty":
        gf, gp, gc = torch.zeros(0, 4), [], []
    elif case == "dims":
        gf = torch.randn(6, 5)
    elif case == "nomatch":
        qp = [9, 9, 9, 9]
    with pytest.raises(ValueError, match=match):
        evaluate(qf, gf, qp, gp, qc, gc)


def test_multi_query_pooling_matches_naive():
    from reid.engine.evaluator import pool_groups

    feats = torch.randn(7, 3)
    groups = [[0, 2], [1], [3, 4, 6]]
    for mode in ("mean", "max"):
        got = pool_groups(feats, groups, mode)
        for row, g in zip(got, groups):
            block = feats[g]
            pooled = block.mean(0) if mode == "mean" else torch.stack([block[:, c].max() for c in range(3)])
            torch.testing.assert_close(row, pooled / pooled.norm())


def test_compiled_loops_use_as_many_threads_as_torch():
    from reid.evaluation import rank_count

    if rank_count.numba is None:
        pytest.skip("numba is not installed")
    qf, gf, qp, gp, qc, gc = random_case(8)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        evaluate(qf, gf, qp, gp, qc, gc)
        assert rank_count.numba.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_compiled_loops_work_without_a_writable_cache(monkeypatch):
    from reid.evaluation import _compiled

    if _compiled.numba is None:
        pytest.skip("numba is not installed")
    real = _compiled.numba.njit

    def no_locator(*args, cache=False, **kwargs):  # what numba raises when no cache folder is writable
        if cache:
            raise RuntimeError("cannot cache function 'f': no locator available for file 'f.py'")
        return real(*args, **kwargs)

    monkeypatch.setattr(_compiled.numba, "njit", no_locator)

    @_compiled.njit(fastmath={"reassoc"})
    def total(x):
        s = 0.0
        for v in x:
            s += v
        return s

    assert total(np.arange(5.0)) == 10.0
