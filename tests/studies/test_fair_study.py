"""The fair-study driver (studies/fair_study.py): its arms exist and share one recipe, its verdict rule and
tables come from the results JSON."""
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from reid.config import load_config

pytestmark = pytest.mark.study  # a study script (studies/), not the product: -m "not study" leaves it out

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "studies"))
from fair_study_arms import claims_in_both, claims_of  # noqa: E402
spec = importlib.util.spec_from_file_location("fair_study", REPO / "studies" / "fair_study.py")
fair_study = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fair_study)

# What a comparison may vary between its arms (the loss with its classifier and learnable parameters, the neck, the
# teacher); everything else of the recipe must be equal.
VARIED = ("loss.", "model.bn_neck", "model.horde", "model.classifier", "distill.", "output_dir", "optim.loss_lr")


def flat(tree, prefix=""):
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict) and v:
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def same_recipe(method, baseline, configs="cpu_study"):
    a, b = (flat(load_config(REPO / "configs" / configs / f"{arm}.yaml")) for arm in (method, baseline))
    differ = {k for k in set(a) | set(b) if a.get(k) != b.get(k) and not k.startswith(VARIED)}
    assert not differ, f"{method} vs {baseline} differ in {sorted(differ)}"


def test_every_claim_names_existing_arms_on_one_recipe():
    for claim in fair_study.CLAIMS:
        if not claim["method"]:  # not testable here: says why
            assert "not testable" in claim["note"] and not claim["baseline"]
            continue
        methods = ([*fair_study.SWEEPS[claim["method"][5:]].values()] if claim["method"].startswith("best:")
                   else [claim["method"]])
        for method in methods:
            same_recipe(method, claim["baseline"])
        assert claim["baseline"] in fair_study.DEFAULT_ARMS
        assert all(m in fair_study.DEFAULT_ARMS or m in fair_study.SWEEP_ARMS for m in methods)


def test_density_sweeps_vary_only_lambda_on_the_papers_bases():
    for base, sweep in fair_study.SWEEPS.items():
        base_term = load_config(REPO / "configs" / "cpu_study" / f"{base}.yaml")["loss"]["terms"][0]
        assert base_term["distance"] == "squared" and base_term.get("margin", base_term.get("neg_margin")) == 1.0
        assert sorted(sweep) == [0.1, 0.3, 1.0, 3.0, 10.0]
        for lam, arm in sweep.items():
            term = load_config(REPO / "configs" / "cpu_study" / f"{arm}.yaml")["loss"]["terms"][0]
            assert term["name"] == "density_adaptivity" and float(term["lam"]) == lam
            assert term["base_distance"] == "squared" and term["eta"] == 0.5
            assert term["base"] == ("contrastive" if base == "contrastive" else "triplet")


def test_the_best_lambda_runs_every_seed_after_the_sweep(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    done = []
    scores = {"density_contrastive_lam0.3": 9.0, "density_contrastive": 5.0}

    def evaluate(arm, seed, root):
        done.append((arm, seed))
        return result(arm, seed, scores.get(arm, 4.0 + seed))

    monkeypatch.setattr(fair_study, "trained", lambda folder: True)
    monkeypatch.setattr(fair_study, "evaluate", evaluate)
    monkeypatch.setattr(fair_study, "load_config", lambda p: {"distill": {"teacher_checkpoint": None}})
    sweep = list(fair_study.SWEEPS["contrastive"].values())
    fair_study.main(["run", "--root", str(tmp_path), "--arms", "contrastive", *sweep[:-1], "--json", str(path)])
    assert fair_study.best_of_sweep(json.loads(path.read_text()), "contrastive") is None  # lambda 10 missing
    assert done == [("contrastive", 0), ("contrastive", 1), ("contrastive", 2)] + [(a, 0) for a in sweep[:-1]]
    done.clear()
    fair_study.main(["run", "--root", str(tmp_path), "--arms", *sweep, "--json", str(path)])
    assert done == [(sweep[-1], 0), ("density_contrastive_lam0.3", 1), ("density_contrastive_lam0.3", 2)]
    results = json.loads(path.read_text())
    out = fair_study.claims_table(results)
    row = next(line for line in out.splitlines() if "its contrastive base" in line)
    assert "`density_contrastive_lam0.3` vs `contrastive`" in row and "9.00 +- 0.00 (n=3)" in row
    table = fair_study.sweep_table(results)
    assert "| `contrastive` | 0.3 | `density_contrastive_lam0.3` (best) | 29.00 | 9.00 |" in table
    assert "| `contrastive` | 0 | `contrastive` |" in table


def test_a_sweep_arm_named_by_a_claim_runs_every_seed(tmp_path, monkeypatch):
    done = []

    def evaluate(arm, seed, root):
        done.append((arm, seed))
        return result(arm, seed, 5.0)

    monkeypatch.setattr(fair_study, "trained", lambda folder: True)
    monkeypatch.setattr(fair_study, "evaluate", evaluate)
    monkeypatch.setattr(fair_study, "load_config", lambda p: {"distill": {"teacher_checkpoint": None}})
    assert any(c["method"] == "density_triplet_lam3" for c in fair_study.CLAIMS)
    fair_study.main(["run", "--root", str(tmp_path), "--arms", "density_triplet_lam3", "density_triplet_lam1",
                     "--json", str(tmp_path / "r.json")])
    assert done == [("density_triplet_lam3", s) for s in (0, 1, 2)] + [("density_triplet_lam1", 0)]


def test_the_from_scratch_second_look_is_neither_run_nor_claimed_in_the_pretrained_regime(
        pretrained_regime, tmp_path, monkeypatch):
    done = []
    monkeypatch.setattr(fair_study, "trained", lambda folder: True)
    monkeypatch.setattr(fair_study, "evaluate", lambda arm, seed, root: done.append((arm, seed)) or
                        result(arm, seed, 5.0))
    monkeypatch.setattr(fair_study, "load_config", lambda p: {"distill": {"teacher_checkpoint": None}})
    fair_study.main(["run", "--regime", "pretrained", "--root", str(tmp_path), "--arms", "density_triplet_lam3",
                     "density_triplet_lam1", "--json", str(tmp_path / "r.json")])
    assert done == [("density_triplet_lam3", 0), ("density_triplet_lam1", 0)]  # a sweep point like any other
    monkeypatch.undo()  # the tables read the real configs (the backbone column)
    results = {f"{a}_seed{s}": result(a, s, 5.0 + s) for a in ("density_triplet_lam3", "triplet_squared")
               for s in range(3)}
    scratch, pretrained = fair_study.claims_table(results), fair_study.claims_table(results, with_backbone=True)
    assert scratch.count("`density_triplet_lam3`") == 2 and "`density_triplet_lam3`" not in pretrained
    assert len(pretrained.splitlines()) == len(scratch.splitlines()) - 2


def test_high_order_rows_read_their_own_evaluation():
    results = {}
    for seed in range(3):
        results[f"binomial_seed{seed}"] = result("binomial", seed, 10.0)
        r = result("horde_binomial", seed, 10.0 + seed)
        r["high_order"] = {"mAP": 12.0 + seed, "rank1": 30.0}
        r["high_order_pca"] = {"mAP": 20.0 + seed, "rank1": 40.0}
        results[f"horde_binomial_seed{seed}"] = r
    claims = fair_study.claims_table(results).splitlines()
    pca = next(line for line in claims if "`horde_binomial` (high_order_pca) vs `binomial`" in line)
    assert "21.00 +- 1.00 (n=3)" in pca and "40.00 vs 30.00" in pca and "| holds |" in pca
    assert "| `horde_binomial` | 0, 1, 2 | 31.00 / 11.00 +- 1.00 | 30.00 / 13.00 +- 1.00 | 40.00 / 21.00 +- 1.00 |" \
        in fair_study.high_order_table(results)
    untestable = next(line for line in claims if line.startswith("| HRAML (Gu) | attribute"))
    assert "| not testable here |" in untestable


def test_students_use_the_papers_batch_and_a_longer_trained_teacher():
    student = load_config(REPO / "configs" / "cpu_study" / "student_hard.yaml")
    teacher = load_config(REPO / "configs" / "cpu_study" / "teacher.yaml")
    assert student["data"]["sampler"] == "darkrank"
    names = [t["name"] for t in student["loss"]["terms"]]
    assert names[:3] == ["softmax", "contrastive", "triplet"]  # the paper's verification + triplet terms
    hard = student["loss"]["terms"][3]
    assert hard["mode"] == "hard" and "list_length" not in hard  # the whole list (eq. 5)
    iters = lambda c: c["train"]["epochs"] * c["train"]["iters_per_epoch"]  # noqa: E731
    assert iters(teacher) == 4 * iters(student)


def result(arm, seed, m, r1=None):
    return {"arm": arm, "seed": seed, "single_query": {"mAP": m, "rank1": r1 if r1 is not None else m + 20},
            "images_per_s": 100.0 + seed, "parameters": 10}


def test_verdicts_follow_the_two_standard_error_rule():
    stats = lambda *v: fair_study.arm_stats({f"x{i}": result("x", i, x) for i, x in enumerate(v)}, "x", "mAP")  # noqa
    base = stats(10.0, 11.0, 12.0)  # mean 11, std 1
    assert fair_study.verdict(stats(14.0, 15.0, 16.0), base) == "holds"  # +4 > 2 * sqrt(2/3) = 1.63
    assert fair_study.verdict(stats(12.0, 13.0, 14.0), base) == "holds"  # +2 > 1.63
    assert fair_study.verdict(stats(11.5, 12.5, 13.5), base) == "no significant difference at this scale"
    assert fair_study.verdict(stats(7.0, 8.0, 9.0), base) == "does not hold at this scale"
    assert fair_study.verdict(stats(14.0, 15.0), base).startswith("incomplete")


def test_tables_are_generated_from_the_json(tmp_path, capsys):
    results = {}
    for seed in range(3):
        for arm, m in (("sn", 20.0 + seed), ("triplet_soft", 10.0 + seed)):
            results[f"{arm}_seed{seed}"] = result(arm, seed, m)
    results["binomial_seed0"] = dict(result("binomial", 0, 5.0), dml={"recall@1": 50.0, "recall@2": 60.0,
                                                                   "recall@4": 70.0, "recall@8": 80.0, "nmi": 40.0})
    path = tmp_path / "study.json"
    path.write_text(json.dumps(results))
    assert fair_study.main(["table", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "| `sn` | 0, 1, 2 | 40.00, 41.00, 42.00 | 20.00, 21.00, 22.00 | 41.00 +- 1.00 | 21.00 +- 1.00 |" in out
    assert "| `binomial` | 0 | 50.00 | 60.00 | 70.00 | 80.00 | 40.00 |" in out
    row = next(line for line in out.splitlines() if "`sn` vs `triplet_soft`" in line)
    assert row.endswith("| holds |  |") and "+10.00" in row
    assert "not run yet" in next(line for line in out.splitlines() if "`sn` vs `softmax`" in line)


def test_an_unknown_arm_is_refused_before_anything_runs(tmp_path):
    with pytest.raises(SystemExit, match="no study arm 'nope'"):
        fair_study.main(["run", "--root", str(tmp_path), "--arms", "sn", "nope", "--json", str(tmp_path / "r.json")])
    assert not (tmp_path / "r.json").exists()


def test_tables_replace_only_their_marked_blocks(tmp_path):
    results = {f"sn_seed{s}": result("sn", s, 20.0 + s) for s in range(3)}
    path = tmp_path / "study.json"
    path.write_text(json.dumps(results))
    doc = tmp_path / "doc.md"
    doc.write_text("intro\n<!-- fair_study:arms -->\nstale\n<!-- /fair_study:arms -->\nmiddle\n"
                   "<!-- fair_study:claims -->\n<!-- /fair_study:claims -->\nend\n")
    fair_study.main(["table", "--json", str(path), "--into", str(doc)])
    text = doc.read_text()
    assert "stale" not in text and text.startswith("intro\n") and "\nmiddle\n" in text and text.endswith("end\n")
    assert "| `sn` | 0, 1, 2 |" in text and "`sn` vs `triplet_soft`" in text
    fair_study.main(["table", "--json", str(path), "--into", str(doc)])
    assert doc.read_text() == text  # idempotent
    bad = tmp_path / "bad.md"
    bad.write_text("<!-- fair_study:arms -->\nno end\n")
    with pytest.raises(SystemExit, match="no closing"):
        fair_study.main(["table", "--json", str(path), "--into", str(bad)])


def test_final_losses_come_from_the_last_epoch_line(tmp_path, monkeypatch):
    monkeypatch.setattr(fair_study, "run_folder", lambda arm, seed: tmp_path)
    (tmp_path / "train.log").write_text(
        "2026-11-27 15:42:26 training small_half on market1501: 12936 images\n"
        "2026-11-27 15:43:04 epoch 1: softmax 6.7660, darkrank 268.6506, total 544.2549, lr 1.00e-04\n"
        "2026-11-27 15:48:12 epoch 8: softmax 6.0350, darkrank 231.3889, total 468.9876, lr 5.90e-05\n"
        "2026-11-27 15:48:12 training done in 64.0 s\n")
    assert fair_study.final_losses(tmp_path) == {"softmax": 6.035, "darkrank": 231.3889, "total": 468.9876}
    run = dict(result("x", 0, 1.0), final_losses=fair_study.final_losses(tmp_path))
    assert fair_study.losses([run]) == "softmax 6.04, darkrank 231, total 469"
    # today's trainer adds the epoch's time and the run's ETA to the line (the last epoch: its time only)
    (tmp_path / "train.log").write_text(
        "2026-12-02 05:30:15 epoch 5: support_neighbor 0.3025, total 0.3025, lr 1.05e-04, epoch time 4:03, run ETA "
        "3:48\n2026-12-02 05:34:21 epoch 6: support_neighbor 0.2884, total 0.2884, lr 1.00e-05, epoch time 4:06\n")
    assert fair_study.final_losses(tmp_path) == {"support_neighbor": 0.2884, "total": 0.2884}


def test_a_claim_with_a_stated_metric_compares_that_metric_of_both_arms():
    results = {}
    for seed in range(3):
        for arm, recall in (("contrastive", 70.0 + seed), *((a, 60.0 + seed) for a in
                                                             fair_study.SWEEPS["contrastive"].values())):
            r = result(arm, seed, 10.0 + seed)
            r["dml"] = {"recall@1": recall + (5.0 if arm == "density_contrastive_lam0.3" else 0.0)}
            results[f"{arm}_seed{seed}"] = r
    results["density_contrastive_lam0.3_seed0"]["single_query"]["mAP"] = 50.0  # the sweep's best by seed-0 mAP
    row = next(line for line in fair_study.claims_table(results).splitlines() if "measured as the paper does" in line)
    assert "`density_contrastive_lam0.3` (dml) vs `contrastive`" in row
    assert "recall@1: 66.00 +- 1.00 (n=3) | recall@1: 71.00 +- 1.00 (n=3) | -5.00" in row
    assert "| does not hold at this scale |" in row


@pytest.fixture()
def pretrained_regime():
    yield fair_study.use_regime("pretrained")
    fair_study.use_regime("from_scratch")  # the module's default, for the other tests


def test_pretrained_arms_share_the_imagenet_recipe_of_at_most_1500_iterations(pretrained_regime):
    arms = sorted(p.stem for p in (REPO / "configs" / "pretrained_study").glob("*.yaml"))
    assert {"sn", "triplet_soft", "softmax", "sn_noneck", "sn_k5", "sn_lambda0"} <= set(arms)
    for claim in claims_of("pretrained"):
        if claim["method"] in arms and claim["baseline"] in arms:
            same_recipe(claim["method"], claim["baseline"], "pretrained_study")
    own = {p["method"]: c["method"] for c, p in claims_in_both() if p["method"] != c["method"]}
    assert own and set(own) <= set(arms)  # the matched-weight arms of this regime: their from-scratch counterpart
    for arm in arms:
        cfg = load_config(REPO / "configs" / "pretrained_study" / f"{arm}.yaml")
        assert cfg["data"]["p"] * cfg["data"]["k"] == 64 and cfg["train"]["flip_test"] and cfg["optim"]["lr"] == 1e-3
        if arm in fair_study.SINGLE_SEED_ARMS:  # the DarkRank teacher: the next test
            continue
        assert (cfg["model"]["backbone"], cfg["model"]["pretrained"]) == ("efficientnet_lite0", "imagenet")
        assert cfg["train"]["epochs"] * cfg["train"]["iters_per_epoch"] <= 1500
        # the arm's own loss, the recipe's softmax + triplet gone (a matched-weight arm: its DarkRank weight apart)
        scratch = load_config(REPO / "configs" / "cpu_study" / f"{own.get(arm, arm)}.yaml")["loss"]["terms"]
        unweighted = lambda terms: [{**t, "weight": None} if t["name"] == "darkrank" else t for t in terms]  # noqa
        assert unweighted(cfg["loss"]["terms"]) == unweighted(scratch)
        assert (cfg["loss"]["terms"] == scratch) == (arm not in own)
    assert fair_study.backbone("sn") == "efficientnet_lite0, ImageNet, 128x64"


def test_pretrained_students_are_the_cheap_lite0_and_their_teacher_a_larger_lite2_trained_longer(pretrained_regime):
    teacher = load_config(REPO / "configs" / "pretrained_study" / "teacher.yaml")
    iters = lambda c: c["train"]["epochs"] * c["train"]["iters_per_epoch"]  # noqa: E731
    assert (teacher["model"]["backbone"], teacher["model"]["pretrained"]) == ("efficientnet_lite2", "imagenet")
    assert teacher["model"]["last_stride"] == 1 and teacher["distill"]["teacher_checkpoint"] is None
    students = sorted(p.stem for p in (REPO / "configs" / "pretrained_study").glob("student_*.yaml"))
    assert {"student_alone", "student_hard", "student_soft", "student_kd", "student_kd_soft"} <= set(students)
    for arm in students:
        cfg = load_config(REPO / "configs" / "pretrained_study" / f"{arm}.yaml")
        assert (cfg["model"]["backbone"], cfg["model"]["last_stride"], cfg["data"]["sampler"]) == (
            "efficientnet_lite0", 2, "darkrank")
        # the paper's relation: one input for both, the teacher trained longer
        assert (cfg["transforms"]["height"], cfg["transforms"]["width"]) == (
            teacher["transforms"]["height"], teacher["transforms"]["width"])
        assert iters(teacher) == 2 * iters(cfg)
        if arm != "student_alone":  # the students read the weights the driver trains for the teacher
            teacher_run = fair_study.run_folder("teacher", 0).relative_to(REPO)
            assert Path(cfg["distill"]["teacher_checkpoint"]) == teacher_run / "checkpoint.pth"
            assert Path(cfg["distill"]["teacher_config"]) == Path("configs/pretrained_study/teacher.yaml")
    assert fair_study.backbone("teacher") == "efficientnet_lite2, ImageNet, 128x64"


def test_the_pretrained_regime_runs_its_own_arms_into_its_own_folders_and_json(pretrained_regime, tmp_path,
                                                                                monkeypatch):
    trained = []
    monkeypatch.setattr(fair_study, "trained", lambda folder: folder in trained)
    monkeypatch.setattr(fair_study, "train", lambda arm, seed, root: trained.append(fair_study.run_folder(arm, seed)))
    monkeypatch.setattr(fair_study, "evaluate", lambda arm, seed, root: result(arm, seed, 50.0 + seed))
    monkeypatch.setattr(fair_study, "REGIMES", {**fair_study.REGIMES, "pretrained": {
        **fair_study.REGIMES["pretrained"], "json": tmp_path / "p.json"}})
    fair_study.main(["run", "--regime", "pretrained", "--root", str(tmp_path), "--seeds", "0"])
    names = [folder.name for folder in trained]
    assert names[:3] == ["pretrained_study_sn_seed0", "pretrained_study_triplet_soft_seed0",
                         "pretrained_study_softmax_seed0"]  # the SN rows first, in the claims' order
    sn_rows = {"sn_noneck", "sn_k5", "sn_lambda0"}
    # the order: every SN row before DarkRank (its teacher before the first student), DarkRank before HORDE
    first = {arm: next(i for i, n in enumerate(names) if n[17:-6] == arm) for arm in {n[17:-6] for n in names}}
    assert max(first[a] for a in sn_rows) < first["teacher"] < first["student_alone"] < first["horde_binomial"]
    # the same arms in another order, but for the DarkRank weights each regime matches on its own student
    own = {c["method"]: p["method"] for c, p in claims_in_both()}
    assert sorted(fair_study.PRETRAINED_ARMS) == sorted(own.get(a, a) for a in fair_study.DEFAULT_ARMS)
    assert all((REPO / "configs" / "pretrained_study" / f"{n[17:-6]}.yaml").exists() for n in names)
    assert sorted(json.loads((tmp_path / "p.json").read_text())) == sorted(n[17:] for n in names)


def test_the_pretrained_claims_table_has_its_own_block_and_the_backbone(pretrained_regime, tmp_path):
    results = {f"{arm}_seed{s}": result(arm, s, m + s) for s in range(3)
               for arm, m in (("sn", 55.0), ("triplet_soft", 50.0))}
    path = tmp_path / "p.json"
    path.write_text(json.dumps(results))
    doc = tmp_path / "doc.md"
    scratch = "<!-- fair_study:claims -->\nfrom scratch\n<!-- /fair_study:claims -->\n"
    doc.write_text(scratch + "<!-- claims:pretrained -->\n<!-- /claims:pretrained -->\n")
    fair_study.main(["table", "--regime", "pretrained", "--json", str(path), "--into", str(doc)])
    text = doc.read_text()
    assert text.startswith(scratch)  # the from-scratch table is left as it was
    row = next(line for line in text.splitlines() if "`sn` vs `triplet_soft`" in line)
    assert "| efficientnet_lite0, ImageNet, 128x64 | `sn` vs `triplet_soft` |" in row and "| holds |" in row
    assert "from-scratch teacher" not in text  # the from-scratch notes stay in their table
    assert text.splitlines()[4].startswith("| paper | claim | backbone |")


@pytest.mark.parametrize("regime", ["from_scratch", "pretrained"])
def test_each_regimes_matched_darkrank_weight_follows_its_own_gradient_measurement(regime):
    """2 x the identity loss's / the transfer term's backbone gradient norm at the paper's weight 2, at the
    student's initialisation (the committed studies/darkrank_gradients.py results), to one significant figure."""
    norms = json.loads(fair_study.REGIMES[regime]["gradients"].read_text())
    folder = fair_study.REGIMES[regime]["configs"]
    matched = [c for c in claims_of(regime) if "rescaled" in c["claim"]]
    assert len(matched) == 3
    for claim in matched:
        terms = load_config(folder / f"{claim['method']}.yaml")["loss"]["terms"]
        weight = next(t["weight"] for t in terms if t["name"] == "darkrank")
        mode = next(t["mode"] for t in terms if t["name"] == "darkrank")
        g = norms[f"student_{mode} @ initialisation (seed 0)"]["gradient_norms"]
        assert g and float(f"{2 * g['softmax'] / g['darkrank']:.1g}") == weight, claim["method"]
        assert f"2 -> {weight:g})" in claim["claim"]
