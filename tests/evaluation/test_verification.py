"""Verification (TAR / FAR / threshold) against analytic values, and the protocol roles shared with rank lists."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from reid.evaluation import evaluate
from reid.evaluation.verification import (JUNK_ID, MATCH, NEGATIVE, SAME_CAMERA, SELF, gallery_roles, load_threshold,
                                          pair_distances, roc_curve, threshold_at_far, verification_report)


def test_two_gaussians_match_analytic_tar_far():
    """Same-id distances ~ N(1, 0.25^2), different-id ~ N(2, 0.3^2): TAR and threshold at each FAR are known."""
    rng = np.random.default_rng(0)
    mp, sp, mn, sn = 1.0, 0.25, 2.0, 0.3
    n_pos, n_neg = 200_000, 2_000_000
    pos, neg = rng.normal(mp, sp, n_pos), rng.normal(mn, sn, n_neg)
    report = verification_report(pos, neg, chosen_far=1e-3)
    for far in (1e-2, 1e-3, 1e-4):
        t_true = mn + sn * norm.ppf(far)
        tar_true = norm.cdf((t_true - mp) / sp)
        # sampling error of an empirical quantile: sqrt(f / n) / density, 5 sigma
        t_tol = 5 * math.sqrt(far / n_neg) / norm.pdf(norm.ppf(far)) * sn
        entry = report.tar_at_far[f"{far:.0e}"]
        assert entry["threshold"] == pytest.approx(t_true, abs=t_tol)
        tar_tol = norm.pdf((t_true - mp) / sp) / sp * t_tol + 5 * math.sqrt(tar_true * (1 - tar_true) / n_pos)
        assert entry["tar"] == pytest.approx(tar_true, abs=tar_tol)
        assert entry["far"] <= far and entry["resolved"]
    assert report.threshold == report.tar_at_far["1e-03"]["threshold"]


def test_threshold_is_strict_and_never_exceeds_far():
    neg = np.array([0.5, 0.1, 0.3, 0.3, 0.9, 0.7, 0.2, 0.8, 0.4, 0.6])
    assert threshold_at_far(neg, 0.1) == 0.2  # one negative (0.1) strictly below
    assert threshold_at_far(neg, 0.05) == 0.1  # none below
    assert threshold_at_far(neg, 0.3) == 0.3  # k=3 allowed, but ties at 0.3: only 0.1 and 0.2 are below
    assert threshold_at_far(neg, 1.0) == math.inf
    with pytest.raises(ValueError, match="FAR must be in"):
        threshold_at_far(neg, 0)


def test_unresolvable_far_is_flagged_and_json_round_trips(tmp_path):
    pos, neg = np.linspace(0, 1, 50), np.linspace(0.5, 2, 500)
    report = verification_report(pos, neg, chosen_far=1e-2)
    assert report.tar_at_far["1e-02"]["resolved"] and not report.tar_at_far["1e-04"]["resolved"]
    path = report.save_json(tmp_path / "verification.json")
    data = json.loads(path.read_text())
    assert data["rule"].startswith("same person if distance <")
    assert load_threshold(path) == (pytest.approx(report.threshold), report.metric)
    far, tar = np.array(data["roc"]["far"]), np.array(data["roc"]["tar"])
    assert np.all(np.diff(far) >= 0) and np.all(np.diff(tar) >= 0) and far[-1] == 1.0


def test_roc_curve_counts_strictly_below():
    thresholds, far, tar = roc_curve(np.array([0.1, 0.2]), np.array([0.2, 0.3]))
    assert thresholds.tolist() == [0.1, 0.2, 0.3, math.inf]
    assert far.tolist() == [0.0, 0.0, 0.5, 1.0] and tar.tolist() == [0.0, 0.5, 1.0, 1.0]


def test_gallery_roles_follow_the_market_protocol():
    q_pids, q_cams = np.array([1, 2, -1]), np.array([0, 0, 1])
    g_pids = np.array([1, 1, 2, -1, 0, 3])
    g_cams = np.array([0, 1, 1, 0, 0, 0])
    roles = gallery_roles(q_pids, g_pids, q_cams, g_cams)
    assert roles[0].tolist() == [SAME_CAMERA, MATCH, NEGATIVE, JUNK_ID, NEGATIVE, NEGATIVE]
    assert roles[1].tolist() == [NEGATIVE, NEGATIVE, MATCH, JUNK_ID, NEGATIVE, NEGATIVE]
    assert (roles[2] == JUNK_ID).all()  # a junk query counts no pair


def test_gallery_roles_without_cameras_keep_same_id_matches():
    """Item 8: without camera ids, every other image of the id is a true match; only the query itself is left out."""
    roles = gallery_roles(np.array([1]), np.array([1, 1, 2]), query_in_gallery=np.array([0]))
    assert roles[0].tolist() == [SELF, MATCH, NEGATIVE]
    with pytest.raises(ValueError, match="both query and gallery"):
        gallery_roles(np.array([1]), np.array([1]), q_camids=np.array([0]))


@pytest.mark.parametrize("cameras", [True, False])
def test_roles_reproduce_the_evaluators_rank1(cameras):
    rng = np.random.default_rng(3)
    qf, gf = torch.randn(40, 8), torch.randn(120, 8)
    q_pids, g_pids = rng.integers(0, 10, 40), rng.integers(-1, 10, 120)
    q_cams, g_cams = rng.integers(0, 3, 40), rng.integers(0, 3, 120)
    kwargs = dict(q_camids=q_cams, g_camids=g_cams) if cameras else dict(query_in_gallery=np.arange(40) % 7)
    result = evaluate(qf, gf, q_pids, g_pids, empty="skip", **kwargs)
    roles = gallery_roles(q_pids, g_pids, **kwargs)
    dist = torch.cdist(qf.double(), gf.double()).pow(2).numpy()
    hits = counted = 0
    for q in range(40):
        order = np.argsort(dist[q], kind="stable")
        ranked = roles[q][order]
        ranked = ranked[(ranked == MATCH) | (ranked == NEGATIVE)]
        if (ranked == MATCH).any():
            counted += 1
            hits += int(ranked[0] == MATCH)
    assert counted == result.num_queries
    assert hits / counted == pytest.approx(result.cmc[0])


def test_pair_distances_collect_protocol_pairs_and_cap_negatives():
    rng = np.random.default_rng(1)
    qf, gf = torch.nn.functional.normalize(torch.randn(30, 16), dim=1), torch.nn.functional.normalize(
        torch.randn(200, 16), dim=1)
    q_pids, g_pids = rng.integers(0, 20, 30), rng.integers(-1, 20, 200)
    q_cams, g_cams = rng.integers(0, 4, 30), rng.integers(0, 4, 200)
    roles = gallery_roles(q_pids, g_pids, q_cams, g_cams)
    pos, neg, total = pair_distances(qf, gf, q_pids, g_pids, q_cams, g_cams, chunk=7)
    assert len(pos) == (roles == MATCH).sum() and len(neg) == total == (roles == NEGATIVE).sum()
    exact = torch.cdist(qf.double(), gf.double()).pow(2).numpy()
    assert np.sort(pos) == pytest.approx(np.sort(exact[roles == MATCH]), abs=1e-5)
    _, few, total2 = pair_distances(qf, gf, q_pids, g_pids, q_cams, g_cams, max_negatives=500)
    assert total2 == total and 350 < len(few) < 650
    with pytest.raises(ValueError, match="ids"):
        pair_distances(qf, gf, q_pids[:5], g_pids)


# --- tools/test.py --verification and rank lists drawn with the protocol's roles (issue 20 items 8, 9) ---------

def _feature_set(pids, camids, features, prefix):
    from reid.engine.evaluator import FeatureSet

    return FeatureSet(torch.as_tensor(features, dtype=torch.float32), np.asarray(pids), np.asarray(camids),
                      [f"{prefix}_{i}.jpg" for i in range(len(pids))])


@pytest.mark.parametrize("has_cameras", [True, False])
def test_ranklists_keep_true_matches_without_cameras(has_cameras, monkeypatch, tmp_path):
    """A dataset without camera ids (every camid 0): its same-id items are true matches, not removed."""
    import reid.visualize as visualize
    from reid.engine.ranklists import write_ranklists

    drawn = []
    monkeypatch.setattr(visualize, "draw_ranklist", lambda *a, **k: drawn.append((a, k)) or np.zeros((2, 2, 3)))
    monkeypatch.setattr(visualize, "save_image", lambda image, path: path)
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(5, 8))
    g_pids = np.repeat(np.arange(5), 4)
    gallery = _feature_set(g_pids, np.zeros(20, int), centres[g_pids] + 0.05 * rng.normal(size=(20, 8)), "g")
    query = _feature_set(np.arange(5), np.zeros(5, int), centres + 0.05 * rng.normal(size=(5, 8)), "q")
    write_ranklists(query, gallery, tmp_path, count=5, topk=4, has_cameras=has_cameras)
    assert len(drawn) == 5
    for args, kwargs in drawn:
        if has_cameras:  # same camera for every pair: all same-id items are junk, only other ids remain
            assert "match" not in kwargs["roles"]
        else:
            assert kwargs["roles"] == ["match"] * 4


def test_tools_test_verification_writes_report_png_and_tensorboard(tiny_checkpoint, tmp_path, capsys):
    import cv2

    from reid import cli

    config = tiny_checkpoint.parent.parent / f"{tiny_checkpoint.parent.name}.yaml"
    out = tmp_path / "test"
    base = ["--config", str(config), "--checkpoint", str(tiny_checkpoint), "--output-dir", str(out)]
    assert cli.test_main(base + ["--verification", "0.01"]) == 0
    printed = capsys.readouterr().out
    assert "verification (" in printed and "threshold for FAR 0.01" in printed
    data = json.loads((out / "verification.json").read_text())
    assert set(data["tar_at_far"]) == {"1e-02", "1e-03", "1e-04"}
    assert data["chosen_far"] == 0.01 and data["threshold"] == data["tar_at_far"]["1e-02"]["threshold"]
    assert data["num_positive"] > 0 and data["num_negative"] > 0 and data["metric"] == "squared euclidean"
    assert data["tar_at_far"]["1e-02"]["far"] <= 0.01
    image = cv2.imread(str(out / "verification.png"))
    assert image is not None and image.shape[1] > image.shape[0] and image.std() > 5
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert cli.test_main(base + ["--verification", "2"]) == 2
    assert "--verification" in capsys.readouterr().err


@pytest.mark.parametrize("backend", ["opencv", "matplotlib"])
def test_verification_plot_is_drawn_with_or_without_matplotlib(backend, monkeypatch, tmp_path):
    import sys

    import cv2

    from reid.visualize import plot_verification

    if backend == "opencv":
        monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    else:
        pytest.importorskip("matplotlib")
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(1, 0.2, 2000), rng.normal(2, 0.3, 20000)
    report = verification_report(pos, neg)
    path = plot_verification(pos, neg, report.roc["far"], report.roc["tar"], report.threshold,
                             tmp_path / "v.png", chosen_far=1e-3)
    image = cv2.imread(str(path))
    assert image is not None and image.shape[1] > image.shape[0] and image.std() > 5
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically, no temp file left
