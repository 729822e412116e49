"""Search backends: the exact torch search against float64 brute force, faiss flat against it, IVF recall."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from reid.inference import search
from reid.inference.search_backends import FaissIndex, faiss_available, import_faiss

needs_faiss = pytest.mark.skipif(not faiss_available(), reason="faiss not installed (pip install 'reid-toolkit[faiss]')")


def _clustered(n_ids: int, per_id: int, dim: int, seed: int, noise: float = 0.6) -> torch.Tensor:
    """L2-normalised features around identity centres, as a re-ID gallery looks (random data has no neighbours)."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_ids, dim, generator=gen)
    x = centres.repeat_interleave(per_id, 0) + noise * torch.randn(n_ids * per_id, dim, generator=gen)
    return torch.nn.functional.normalize(x, dim=1)


def _brute_force(q: torch.Tensor, g: torch.Tensor, k: int):
    d = torch.cdist(q.double(), g.double()).pow(2).numpy()
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(d, order, axis=1)


def test_exact_search_equals_float64_brute_force_with_ties():
    g = _clustered(20, 10, 64, seed=0)
    g[50] = g[7]  # duplicates: exact ties, broken by gallery index
    g[120] = g[7]
    q = torch.cat([g[7:8], _clustered(5, 2, 64, seed=1)])
    idx, dist = search(q, g, topk=15)
    ref_i, ref_d = _brute_force(q, g, 15)
    assert np.array_equal(idx, ref_i)
    assert dist == pytest.approx(ref_d, abs=1e-12)
    assert idx[0, :3].tolist() == [7, 50, 120]


def test_search_rejects_bad_backend_and_rerank_with_faiss():
    g = _clustered(4, 3, 8, seed=0)
    with pytest.raises(ValueError, match="backend must be one of"):
        search(g[:2], g, backend="annoy")
    with pytest.raises(ValueError, match="re-ranking needs every query-gallery distance"):
        search(g[:2], g, rerank=True, backend="faiss")


def test_missing_faiss_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss now raises ImportError
    with pytest.raises(ImportError, match=r"reid-toolkit\[faiss\]"):
        import_faiss()
    assert not faiss_available()


@needs_faiss
def test_faiss_flat_returns_the_same_neighbours_as_exact():
    g = _clustered(50, 20, 128, seed=2)
    g[300] = g[11]
    q = torch.cat([g[11:12], _clustered(10, 3, 128, seed=3)])
    ours = search(q, g, topk=20, backend="exact")
    theirs = search(q, g, topk=20, backend="faiss")
    assert np.array_equal(ours[0], theirs[0])
    assert ours[1] == pytest.approx(theirs[1], abs=1e-12)


@needs_faiss
def test_faiss_ivf_recall_against_exact_and_prebuilt_index():
    g = _clustered(200, 20, 64, seed=4)
    gen = torch.Generator().manual_seed(5)
    q = torch.nn.functional.normalize(g[::40] + 0.3 * torch.randn(len(g[::40]), 64, generator=gen), dim=1)
    g16 = g.numpy().astype(np.float16)  # an fp16 gallery: the exact reference ranks the same rounded values
    exact_i, _ = search(q, torch.from_numpy(g16.astype(np.float32)), topk=10)
    index = FaissIndex(g16, kind="ivf", nprobe=32)
    assert index.nlist > 1 and index.index.nprobe == 32
    ivf_i, ivf_d = search(q, g, topk=10, backend="faiss-ivf", index=index)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact_i, ivf_i)])
    assert recall >= 0.95
    assert np.all(np.diff(ivf_d, axis=1) >= 0)  # refined: nearest first
    with pytest.raises(ValueError, match="kind"):
        FaissIndex(g.numpy(), kind="lsh")


@needs_faiss
def test_faiss_hnsw_over_pca_recall_against_exact():
    from reid.inference.search_backends import exact_search

    gen = torch.Generator().manual_seed(3)
    centres = torch.randn(300, 128, generator=gen)
    gallery = torch.nn.functional.normalize(centres.repeat_interleave(10, 0)
                                            + 0.6 * torch.randn(3000, 128, generator=gen), dim=1)
    query = torch.nn.functional.normalize(centres[:40] + 0.6 * torch.randn(40, 128, generator=gen), dim=1)
    exact_idx, exact_dist = exact_search(query, gallery, 10)
    index = FaissIndex(gallery.numpy(), kind="hnsw", reduce=32, ef_search=128)
    idx, dist = index.search(query.numpy(), 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact_idx.tolist(), idx.tolist())])
    assert recall >= 0.95
    # candidates are re-ordered by exact float64 distance: found neighbours carry their exact distances
    found = idx[0] >= 0
    d_exact = ((gallery.double()[idx[0][found]] - query.double()[0]) ** 2).sum(1).numpy()
    np.testing.assert_allclose(dist[0][found], d_exact, rtol=0, atol=1e-12)
    assert np.all(np.diff(dist[0][found]) >= 0)
    with pytest.raises(ValueError, match="'flat', 'ivf' or 'hnsw'"):
        FaissIndex(gallery.numpy(), kind="lsh")
