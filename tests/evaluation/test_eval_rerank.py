"""k-reciprocal re-ranking against a dense numpy oracle of the paper's steps, and its error paths."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from naive_references import naive_k_reciprocal_rerank
from reid.evaluation import evaluate, iter_rerank_chunks, k_reciprocal_rerank


@pytest.mark.parametrize("use_numba", [True, False])
@pytest.mark.parametrize("k1,k2,lam", [(20, 6, 0.3), (5, 1, 0.5), (8, 3, 0.0)])
def test_matches_dense_oracle(k1, k2, lam, use_numba, monkeypatch):
    from reid.evaluation import knn

    if not use_numba:  # the torch path (CUDA, or a machine without numba)
        monkeypatch.setattr(knn, "numba", None)
    rng = np.random.default_rng(k1)
    qf = rng.normal(size=(9, 5)).astype(np.float32)
    gf = rng.normal(size=(31, 5)).astype(np.float32)
    got = k_reciprocal_rerank(torch.from_numpy(qf), torch.from_numpy(gf), k1, k2, lam)
    np.testing.assert_allclose(got, naive_k_reciprocal_rerank(qf, gf, k1, k2, lam), atol=1e-5)


@pytest.mark.parametrize("use_numba", [True, False])
def test_blockwise_symmetric_knn_equals_a_full_sort(use_numba):
    from reid.evaluation import knn

    if use_numba and knn.numba is None:
        pytest.skip("numba is not installed")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(53, 6)).astype(np.float32)
    x[7] = x[30]  # an exact duplicate: the tie goes to the lower index
    d = ((x[:, None, :].astype(np.float64) - x[None].astype(np.float64)) ** 2).sum(-1)
    want = np.argsort(d, axis=1, kind="stable")[:, :9]
    for chunk in (7, 16, 53, 1024):  # blocks that do not divide N, and one block
        idx, row_max = knn.nearest_neighbours(torch.from_numpy(x), 9, chunk=chunk, use_numba=use_numba)
        np.testing.assert_array_equal(idx, want)
        np.testing.assert_allclose(row_max, d.max(1), rtol=1e-5)
    pairs = rng.integers(0, 53, (2, 40))
    np.testing.assert_allclose(knn.pair_sq_distances(torch.from_numpy(x), *pairs, use_numba=use_numba),
                               d[pairs[0], pairs[1]], rtol=1e-12, atol=1e-12)


def test_chunks_and_precomputed_knn_agree():
    rng = np.random.default_rng(1)
    qf = torch.from_numpy(rng.normal(size=(12, 4)).astype(np.float32))
    gf = torch.from_numpy(rng.normal(size=(40, 4)).astype(np.float32))
    full = k_reciprocal_rerank(qf, gf, 6, 3, 0.3)
    x = torch.cat([qf, gf])
    knn = torch.cdist(x, x).argsort(dim=1, stable=True)[:, :10].numpy()
    blocks = dict((s.start, b) for s, b in iter_rerank_chunks(qf, gf, 6, 3, 0.3, knn=knn, query_chunk=5))
    np.testing.assert_allclose(np.concatenate([blocks[k] for k in sorted(blocks)]), full, atol=1e-6)


def test_evaluate_with_rerank_equals_evaluating_the_reranked_matrix():
    rng = np.random.default_rng(2)
    qf = torch.from_numpy(rng.normal(size=(10, 4)).astype(np.float32))
    gf = torch.from_numpy(rng.normal(size=(50, 4)).astype(np.float32))
    qp, gp = rng.integers(1, 5, 10), rng.integers(1, 5, 50)
    qc, gc = np.zeros(10, int), np.ones(50, int)
    a = evaluate(qf, gf, qp, gp, qc, gc, rerank=True, k1=6, k2=3)
    b = evaluate(None, None, qp, gp, qc, gc, distmat=k_reciprocal_rerank(qf, gf, 6, 3, 0.3))
    assert a.mAP == pytest.approx(b.mAP) and np.allclose(a.cmc, b.cmc)


@pytest.mark.parametrize("kwargs,match", [
    ({"k1": 60}, "k1 < N"),
    ({"gdim": 3}, "4-d but gallery features 3-d"),
    ({"nan": True}, "NaN or inf"),
])
def test_bad_input(kwargs, match):
    qf, gf = torch.randn(5, 4), torch.randn(20, kwargs.get("gdim", 4))
    if kwargs.get("nan"):
        gf[2, 1] = float("inf")
    with pytest.raises(ValueError, match=match):
        k_reciprocal_rerank(qf, gf, k1=kwargs.get("k1", 6), k2=3)
