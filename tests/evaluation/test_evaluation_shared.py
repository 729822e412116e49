"""`reid.evaluation` owns ranking and distances: `evaluate` in its own module, one distance formula, one
feature-extraction loop and one rank-list mask, called by the engine, inference, the search backends and the demo.
Each replaced piece of code is checked against a copy of what it replaced, on random inputs, bit for bit."""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pytest
import torch

import reid.evaluation as evaluation
from reid.evaluation.distance import pairwise_distance, rank_gallery
from reid.evaluation.verification import JUNK_ID, MATCH, NEGATIVE, SAME_CAMERA, SELF, in_ranking


def _features(n: int, d: int, seed: int) -> torch.Tensor:
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.normalize(x, dim=1)


def test_evaluate_lives_in_its_module_and_is_re_exported():
    from reid.evaluation import ranking

    assert evaluation.evaluate is ranking.evaluate
    assert {"evaluate", "pairwise_distance", "rank_gallery", "extract_features"} <= set(evaluation.__all__)


def _old_exact_search(query, gallery, k, extra=8, chunk=256):
    """reid.inference.search_backends.exact_search before it called the evaluation's distance (own float32 formula)."""
    from reid.inference.search_backends import refine

    q, g = query.float(), gallery.float()
    g_sq = g.pow(2).sum(1)
    m = min(len(g), k + extra)
    idx, dist = [], []
    for s in range(0, len(q), chunk):
        d = (q[s:s + chunk].pow(2).sum(1, keepdim=True) + g_sq[None] - 2 * q[s:s + chunk] @ g.T).clamp_min(0)
        cut = torch.kthvalue(d, m, dim=1, keepdim=True).values if m < len(g) else d.max(1, keepdim=True).values
        mask = (d <= cut).numpy()
        width = int(mask.sum(1).max())
        cand = np.full((len(d), width), -1, dtype=np.int64)
        for r, row in enumerate(mask):
            hit = np.flatnonzero(row)
            cand[r, :len(hit)] = hit
        i, dd = refine(q[s:s + chunk], g, cand, min(k, len(g)))
        idx.append(i)
        dist.append(dd)
    return np.concatenate(idx), np.concatenate(dist)


@pytest.mark.parametrize("nq,ng,d,k", [(5, 40, 8, 10), (37, 600, 256, 10), (300, 900, 2048, 20), (3, 12, 16, 50)])
def test_exact_search_results_unchanged(nq, ng, d, k):
    from reid.inference.search_backends import exact_search

    q, g = _features(nq, d, nq), _features(ng, d, ng + 1)
    g[5] = g[2]  # ties: the earlier gallery item first
    g[7] = q[0]  # a distance of exactly zero
    new_i, new_d = exact_search(q, g, k)
    old_i, old_d = _old_exact_search(q, g, k)
    assert torch.equal(torch.from_numpy(new_i), torch.from_numpy(old_i))
    assert torch.equal(torch.from_numpy(new_d), torch.from_numpy(old_d))


def test_exact_search_candidates_come_from_the_evaluation_distance(monkeypatch):
    from reid.evaluation import distance
    from reid.inference.search_backends import exact_search

    calls = []
    real = distance.pairwise_distance
    monkeypatch.setattr(distance, "pairwise_distance", lambda *a, **kw: calls.append(a[2]) or real(*a, **kw))
    exact_search(_features(4, 8, 0), _features(30, 8, 1), 5)
    assert calls == ["euclidean"]


@pytest.mark.parametrize("d", [8, 64, 512])
def test_rank_gallery_uses_the_evaluation_distances(d):
    from reid.evaluation.topk import exact_distances
    from reid.inference.search_backends import exact_search

    q, g = _features(6, d, 3), _features(200, d, 4)
    g[9] = g[4]
    for i in range(len(q)):
        order, dist = rank_gallery(q[i], g, 10)
        full = pairwise_distance(q[i:i + 1], g, "euclidean")[0]  # the evaluation's float32 formula
        expected = torch.from_numpy(np.argsort(full.numpy(), kind="stable")[:10])
        assert torch.equal(torch.from_numpy(order), expected)  # no near-ties in random features: its order
        # the distances are the search's float64 ones, bit for bit, within float32 rounding of the evaluation's
        assert dist.dtype == np.float64 and np.array_equal(dist, exact_distances(q[i].numpy(), g[order].numpy()))
        search_i, search_d = exact_search(q[i:i + 1], g, 10)
        assert np.array_equal(order, search_i[0]) and np.array_equal(dist, search_d[0])
        np.testing.assert_allclose(dist, full[expected].numpy(), atol=1e-5)
        # the order of the rank lists' former direct formula (no near-ties in random features)
        old = (g - q[i][None]).pow(2).sum(1)
        assert np.array_equal(order, np.argsort(old.numpy(), kind="stable")[:10])
        np.testing.assert_allclose(dist, old[expected].numpy(), atol=1e-5)
    assert list(rank_gallery(q[0], torch.cat([q[:1], q[:1]]), 2)[0]) == [0, 1]  # exact ties by gallery index


def _old_rank_gallery(query_feature, gallery, topk):
    """reid.evaluation.distance.rank_gallery before it used the search's order (float32 distances only)."""
    d = pairwise_distance(query_feature.reshape(1, -1), gallery, "euclidean")[0]
    order = np.argsort(d.numpy(), kind="stable")[:topk]
    return order, d.numpy()[order]


def _near_tie_gallery():
    """A query and a gallery whose items 0 and 1 the float32 distance cannot tell apart: item 1 is the query itself
    (distance 0), item 0 is 2^-12 away in one coordinate (squared distance 2^-24, which the float32 sum
    |q|^2 + |g|^2 - 2 q.g rounds to 0 exactly). The other items are far, in other dimensions."""
    d = 16
    q = torch.zeros(1, d)
    q[0, 0] = 1.0
    near = q.clone()
    near[0, 0] = 1.0 + 2.0 ** -12
    far = 3 + torch.rand(6, d, generator=torch.Generator().manual_seed(0))
    far[:, 0] = 0
    return q, torch.cat([near, q, far])


def test_rank_lists_and_the_search_agree_on_a_near_tie():
    import reid

    q, g = _near_tie_gallery()
    old_order, old_dist = _old_rank_gallery(q[0], g, 5)
    assert old_order[:2].tolist() == [0, 1] and old_dist[0] == old_dist[1] == 0  # float32: a tie, by index
    order, dist = rank_gallery(q[0], g, 5)
    assert order[:2].tolist() == [1, 0] and dist[0] == 0 and dist[1] == 2.0 ** -24  # float64: the query first
    search_i, search_d = reid.search(q, g, topk=5)  # the demo's search
    assert np.array_equal(order, search_i[0]) and np.array_equal(dist, search_d[0])
    assert order.tolist() == np.argsort(((g.double() - q.double()) ** 2).sum(1).numpy(), kind="stable")[:5].tolist()


def test_rank_gallery_in_cosine_distance_and_on_an_empty_gallery():
    q, g = _near_tie_gallery()
    order, dist = rank_gallery(q[0], g, 3, metric="cosine")
    gn = torch.nn.functional.normalize(g.double(), dim=1)
    exact = 1 - gn @ torch.nn.functional.normalize(q.double(), dim=1)[0]
    assert order.tolist() == np.argsort(exact.numpy(), kind="stable")[:3].tolist()
    np.testing.assert_allclose(dist, exact.numpy()[order], rtol=0, atol=1e-15)
    order, dist = rank_gallery(q[0], g[:0], 3)  # every item left out by the protocol: nothing to draw
    assert order.shape == (0,) and dist.shape == (0,)


def test_rank_list_mask_is_the_former_expression():
    roles = np.random.default_rng(0).choice([NEGATIVE, MATCH, SAME_CAMERA, JUNK_ID, SELF], size=(7, 50))
    roles = roles.astype(np.int8)
    np.testing.assert_array_equal(in_ranking(roles), (roles == MATCH) | (roles == NEGATIVE))
    np.testing.assert_array_equal(~in_ranking(roles[0]), (roles[0] != MATCH) & (roles[0] != NEGATIVE))


class _Net(torch.nn.Module):
    """A model with batch norm (eval vs train mode matters) that returns a dict in training mode, like ReIDModel."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.bn = torch.nn.BatchNorm2d(4)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-1, 1)
            self.bn.running_var.uniform_(0.5, 2)

    def forward(self, x: torch.Tensor, return_dict: bool = False):
        out = self.bn(self.conv(x)).mean((2, 3))
        return {"normalized": out} if self.training or return_dict else out


def _old_engine_loop(model, loader, device, flip=False):
    """reid.engine.evaluator's extraction loop (now `loader_features`) before it called the evaluation package."""
    def emb(m, images):
        out = m(images)
        return out["normalized"] if isinstance(out, Mapping) else out

    was_training = model.training
    model.eval()
    feats = []
    with torch.no_grad():
        for batch in loader:
            images = batch["img"].to(device, non_blocking=True)
            with torch.autocast(device_type=device.type, enabled=False):
                out = emb(model, images)
                if flip:
                    out = out + emb(model, torch.flip(images, dims=[3]))
            feats.append(torch.nn.functional.normalize(out.float(), dim=1).cpu())
    model.train(was_training)
    return torch.cat(feats)


@pytest.mark.parametrize("flip", [False, True])
def test_one_extraction_loop_gives_the_former_features(flip):
    from reid.engine.evaluator import loader_features as engine_extract
    from reid.evaluation.features import extract_features

    torch.manual_seed(0)
    model = _Net()
    images = torch.randn(11, 3, 12, 6, generator=torch.Generator().manual_seed(5))
    loader = [{"img": images[s:s + 4], "pid": torch.arange(s, min(s + 4, 11)), "camid": torch.zeros(4)[:len(
        images[s:s + 4])].long()} for s in range(0, 11, 4)]
    device = torch.device("cpu")
    model.train()
    expected = _old_engine_loop(model, loader, device, flip)
    assert model.training
    feats, pids, camids = engine_extract(model, loader, device, flip=flip, progress=False)
    assert model.training  # the caller's mode is restored
    assert torch.equal(feats, expected) and pids.tolist() == list(range(11)) and len(camids) == 11
    direct = extract_features(model, (b["img"] for b in loader), device, flip=flip)
    assert torch.equal(direct, expected) and model.training
    with pytest.raises(ValueError, match="query: the loader produced no images"):
        engine_extract(model, [], device, desc="query", progress=False)


def test_feature_extractor_uses_the_same_loop(tmp_path):
    """reid.FeatureExtractor.extract equals the engine's extraction of the same preprocessed batches."""
    from engine_helpers import tiny_config
    from reid.builders import build_model_from_config
    from reid.checkpoint import save_checkpoint
    from reid.engine.evaluator import loader_features as engine_extract
    from reid.inference import FeatureExtractor

    cfg = tiny_config(tmp_path / "run", tmp_path / "data", [{"name": "softmax"}], {"classifier": "linear"})
    torch.manual_seed(2)
    model = build_model_from_config(cfg, 3)
    path = save_checkpoint({"model": model.state_dict(), "config": cfg, "num_classes": 3}, tmp_path / "m.pth")
    arrays = [np.random.default_rng(i).integers(0, 256, (50, 20, 3), dtype=np.uint8) for i in range(5)]
    for flip in (False, True):
        extractor = FeatureExtractor(path, device="cpu", batch_size=2, flip=flip)
        prepared = torch.stack([extractor._prepare(a) for a in arrays])
        loader = [{"img": prepared[s:s + 2], "pid": torch.zeros(len(prepared[s:s + 2])).long(),
                   "camid": torch.zeros(len(prepared[s:s + 2])).long()} for s in range(0, 5, 2)]
        expected = _old_engine_loop(extractor.model, loader, torch.device("cpu"), flip)
        assert torch.equal(extractor.extract(arrays), expected)
        assert torch.equal(engine_extract(extractor.model, loader, torch.device("cpu"), flip=flip,
                                          progress=False)[0], expected)


def test_the_evaluation_package_never_imports_the_engine():
    from test_import_rules import _modules, imported

    offending = {f"{p.name} imports {n}" for p in _modules("evaluation") for n in imported(p)
                 if n == "reid.engine" or n.startswith("reid.engine.")}
    assert not offending, "; ".join(sorted(offending))


def test_one_function_is_named_extract_features():
    """The engine's loader-fed form is `loader_features`: one name, one signature."""
    import ast
    from pathlib import Path

    root = Path(evaluation.__file__).resolve().parents[1]
    defined = sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                     for node in ast.walk(ast.parse(p.read_text()))
                     if isinstance(node, ast.FunctionDef) and node.name == "extract_features")
    assert defined == ["evaluation/features.py"]


def test_query_positions_is_the_query_in_gallery_map():
    from reid.evaluation.verification import query_positions

    got = query_positions(["b", "x", "a", "b"], ["a", "b", "c"])
    assert got.dtype == np.int64 and got.tolist() == [1, -1, 0, 1]
    assert query_positions([], ["a"]).tolist() == []


def test_distance_names_are_written_once_for_every_metric():
    from reid.config.schema import CHOICES
    from reid.demo.run import METRICS
    from reid.evaluation.verification import DISTANCE_NAMES

    assert tuple(DISTANCE_NAMES) == CHOICES["test.metric"]
    assert DISTANCE_NAMES["euclidean"] == METRICS[False] == "squared euclidean"  # what reid-test's files say
