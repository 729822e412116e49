"""The re-ranking's faiss k-NN backend: the same neighbour lists as ours (ties included), hence identical re-ranked
distances and CMC / mAP; a missing faiss is one error naming the extra."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from reid.evaluation import evaluate, iter_rerank_chunks, k_reciprocal_rerank, knn
from reid.inference.search_backends import faiss_available

needs_faiss = pytest.mark.skipif(not faiss_available(), reason="faiss not installed (pip install 'reid-toolkit[faiss]')")


def _features(n_ids: int, per_id: int, dim: int, seed: int) -> np.ndarray:
    """Clustered, L2-normalised rows (re-ID-like: close neighbours crowd together) with duplicated rows (exact ties)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_ids, dim))
    x = np.repeat(centres, per_id, 0) + 0.5 * rng.normal(size=(n_ids * per_id, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x[[11, 40]] = x[3]  # a triple: ties broken by index, and a row whose duplicate has a lower index than itself
    x[25] = x[45]
    return x.astype(np.float32)


def _float64_order(x: np.ndarray, k: int) -> np.ndarray:
    d = ((x[:, None, :].astype(np.float64) - x[None].astype(np.float64)) ** 2).sum(-1)
    return np.argsort(d, axis=1, kind="stable")[:, :k]


def _evaluate_tool():
    import reid.cli.evaluate  # reid-evaluate (tools/evaluate.py is a wrapper over it)

    return reid.cli.evaluate


@needs_faiss
@pytest.mark.parametrize("k", [1, 7, 21])
def test_faiss_knn_lists_and_row_maxima_equal_ours(k):
    x = torch.from_numpy(_features(12, 6, 32, seed=k))
    ours, ours_max = knn.nearest_neighbours(x, k, chunk=30)
    got, got_max = knn.nearest_neighbours(x, k, chunk=30, backend="faiss")
    np.testing.assert_array_equal(got, ours)
    np.testing.assert_array_equal(got_max, ours_max)  # bit for bit: the re-ranking weights divide by it
    np.testing.assert_array_equal(got, _float64_order(x.numpy(), k))
    assert got[40, :3].tolist() == [3, 11, 40][:k]  # the tie group in index order, not "self first"


@pytest.mark.parametrize("backend,use_numba", [("exact", True), ("exact", False), ("faiss", True)])
def test_tie_group_larger_than_the_candidate_margin(backend, use_numba):
    # 20 copies of one row, more than k + extra = 13 candidates: a cut through the tie group would be arbitrary,
    # so crowded rows are widened until the group is complete and the lowest indices win
    if backend == "faiss" and not faiss_available():
        pytest.skip("faiss not installed")
    x = _features(12, 6, 16, seed=5)
    copies = np.arange(5, 65, 3)
    assert len(copies) == 20
    x[copies] = x[0]
    got, _ = knn.nearest_neighbours(torch.from_numpy(x), 5, extra=8, use_numba=use_numba, backend=backend)
    np.testing.assert_array_equal(got, _float64_order(x, 5))
    assert got[copies[-1]].tolist() == [0, 5, 8, 11, 14]


@pytest.mark.parametrize("backend,use_numba", [("exact", True), ("exact", False), ("faiss", True)])
def test_near_ties_within_float32_rounding(backend, use_numba):
    # 32 points one axis-step from a centre: their float64 distances differ only by float32 rounding of the
    # coordinates, so float32 distances (ours and faiss's BLAS) order them by noise and a 13-candidate cut misses
    # true neighbours of 33 rows; widening the crowded rows recovers the float64 lists in both backends
    if backend == "faiss" and not faiss_available():
        pytest.skip("faiss not installed")
    rng = np.random.default_rng(1)
    dim = 32
    centre = (rng.normal(size=dim) / np.sqrt(dim)).astype(np.float32)
    ring = centre[None] + np.eye(dim, dtype=np.float32) / 16
    far = centre + rng.normal(size=(40, dim)).astype(np.float32)
    x = np.concatenate([far[:20], centre[None], ring, far[20:]]).astype(np.float32)
    got, _ = knn.nearest_neighbours(torch.from_numpy(x), 6, extra=8, use_numba=use_numba, backend=backend)
    np.testing.assert_array_equal(got, _float64_order(x, 6))


@needs_faiss
@pytest.mark.parametrize("k1,k2,lam", [(20, 6, 0.3), (5, 1, 0.5)])
def test_faiss_rerank_equals_exact_rerank(k1, k2, lam):
    x = torch.from_numpy(_features(15, 5, 24, seed=k1))
    qf, gf = x[:20], x[20:]
    exact = k_reciprocal_rerank(qf, gf, k1, k2, lam)
    faiss = k_reciprocal_rerank(qf, gf, k1, k2, lam, knn_backend="faiss")
    np.testing.assert_array_equal(faiss, exact)
    blocks = dict((s.start, b) for s, b in iter_rerank_chunks(qf, gf, k1, k2, lam, query_chunk=7, knn_backend="faiss"))
    np.testing.assert_array_equal(np.concatenate([blocks[s] for s in sorted(blocks)]), exact)


@needs_faiss
@pytest.mark.parametrize("protocol", ["market", "single-shot"])
def test_evaluate_with_faiss_knn_gives_the_same_cmc_and_map(protocol):
    x = torch.from_numpy(_features(15, 5, 24, seed=9))
    pids = np.repeat(np.arange(15), 5)
    cams = np.tile(np.arange(5), 15)
    q = np.arange(0, 75, 5)  # one query per identity, the rest is the gallery
    g = np.setdiff1d(np.arange(75), q)
    args = (x[q], x[g], pids[q], pids[g], cams[q], cams[g])
    a = evaluate(*args, protocol=protocol, rerank=True, k1=8, k2=3)
    b = evaluate(*args, protocol=protocol, rerank=True, k1=8, k2=3, knn_backend="faiss")
    np.testing.assert_array_equal(b.cmc, a.cmc)
    assert b.mAP == a.mAP and b.mINP == a.mINP


@needs_faiss
def test_evaluate_tool_knn_backend_flag(tmp_path, capsys):
    x = _features(10, 5, 16, seed=2)
    pids, cams = np.repeat(np.arange(10), 5), np.tile(np.arange(5), 10)
    np.savez(tmp_path / "q.npz", features=x[::5], pids=pids[::5], camids=cams[::5])
    keep = np.arange(50) % 5 != 0
    np.savez(tmp_path / "g.npz", features=x[keep], pids=pids[keep], camids=cams[keep])
    tool = _evaluate_tool()
    common = ["--query", str(tmp_path / "q.npz"), "--gallery", str(tmp_path / "g.npz"), "--rerank", "--k1", "6"]
    assert tool.main(common + ["--json", str(tmp_path / "exact.json")]) == 0
    assert tool.main(common + ["--knn-backend", "faiss", "--json", str(tmp_path / "faiss.json")]) == 0
    exact, faiss = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("exact", "faiss"))
    assert faiss == exact


def test_missing_faiss_is_one_error_naming_the_extra(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "faiss", None)  # `import faiss` now raises ImportError, installed or not
    qf, gf = torch.randn(4, 8), torch.randn(12, 8)
    with pytest.raises(ImportError, match=r"knn_backend='faiss' needs faiss: pip install 'reid-toolkit\[faiss\]'"):
        k_reciprocal_rerank(qf, gf, 5, 2, knn_backend="faiss")
    np.savez(tmp_path / "q.npz", features=qf.numpy(), pids=np.arange(4))
    np.savez(tmp_path / "g.npz", features=gf.numpy(), pids=np.arange(12) % 4)
    code = _evaluate_tool().main(["--query", str(tmp_path / "q.npz"), "--gallery", str(tmp_path / "g.npz"),
                                  "--rerank", "--k1", "5", "--knn-backend", "faiss"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "reid-toolkit[faiss]" in err


def test_unknown_knn_backend_is_refused():
    with pytest.raises(ValueError, match="expected one of exact, faiss, got 'annoy'"):
        k_reciprocal_rerank(torch.randn(4, 8), torch.randn(12, 8), 5, 2, knn_backend="annoy")
