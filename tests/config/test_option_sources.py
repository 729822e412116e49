"""One source per option list (issue #17): the trainer's K >= 2 refusal asks the loss classes (`needs_positives`,
wrappers answer from their base) instead of a name list; the demo's --backend choices are the search backends;
the evaluation's metric / AP / empty-query / protocol lists are the config schema's, with the same messages."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

from reid.config import ConfigError, load_config, save_config
from reid.config.schema import CHOICES
from reid.engine.trainer import Trainer, _check_run, needs_positives
from reid.losses import LOSSES, ReIDLoss, build_loss

REID = Path(__file__).resolve().parents[2] / "reid"
# the name list the trainer kept before the losses answered themselves: the same losses are refused
FORMER_NEEDS_POSITIVES = {"triplet", "support_neighbor", "contrastive", "npair", "binomial_deviance",
                          "multi_similarity"}


def _config(tmp_path: Path, terms, k: int = 1, sampler: str = "pk"):
    raw = {"output_dir": str(tmp_path / "run"),
           "data": {"dataset": "market1501", "root": str(tmp_path / "no_data"), "p": 4, "k": k, "sampler": sampler},
           "loss": {"terms": terms},
           "train": {"epochs": 1, "device": "cpu"}}
    save_config(raw, tmp_path / "cfg.yaml")
    return load_config(tmp_path / "cfg.yaml")


@pytest.fixture(params=[True, False], ids=["needs_positives", "no_positives"])
def probe_loss(request):
    """A plug-in loss registered for the test only, answering `needs_positives` with the parameter."""

    class Probe(ReIDLoss):
        needs_positives = request.param

        def forward(self, inputs, labels, teacher=None):
            return inputs.sum() * 0

    LOSSES.register("probe_pairs")(Probe)
    yield Probe
    LOSSES.unregister("probe_pairs")


def test_a_registered_loss_decides_the_k1_refusal(probe_loss, tmp_path):
    cfg = _config(tmp_path, [{"name": "softmax"}, {"name": "probe_pairs"}])
    if probe_loss.needs_positives:
        with pytest.raises(ConfigError, match=r"data.k=1: loss 'probe_pairs' compares images of one identity within "
                                              r"a batch and needs data.k >= 2 \(with k=1 it is exactly 0\)"):
            Trainer(cfg, progress=False)
        assert not (tmp_path / "run").exists()  # refused before anything is written
    else:
        _check_run(cfg, tmp_path / "run", resume=False, overwrite=False)  # no refusal
    _check_run(_config(tmp_path, [{"name": "probe_pairs"}], k=2), tmp_path / "run", False, False)
    _check_run(_config(tmp_path, [{"name": "probe_pairs"}], sampler="darkrank"), tmp_path / "run", False, False)


@pytest.mark.parametrize("wrapper", ["horde", "density_adaptivity"])
def test_wrappers_answer_from_their_base(wrapper, tmp_path):
    for base in ("triplet", "npair"):
        assert needs_positives({"name": wrapper, "base": base}) is True
    if wrapper == "horde":
        assert needs_positives({"name": wrapper, "base": "hraml"}) is False  # a base without pairs
    assert needs_positives({"name": wrapper}) is True  # default base: contrastive
    assert needs_positives({"name": wrapper, "base": "no_such_loss"}) is False  # the build refuses it instead
    params = {"num_classes": 3} if wrapper == "density_adaptivity" else {}
    assert build_loss(wrapper, base="triplet", **params).needs_positives is True  # a built wrapper answers too
    cfg = _config(tmp_path, [{"name": wrapper, "base": "triplet"}])
    with pytest.raises(ConfigError, match=rf"data.k=1: loss '{wrapper}'.*k >= 2"):
        _check_run(cfg, tmp_path / "run", False, False)


def test_horde_over_a_plug_in_base_asks_that_base(probe_loss, tmp_path):
    assert needs_positives({"name": "horde", "base": "probe_pairs"}) is probe_loss.needs_positives
    assert build_loss("horde", base="probe_pairs").needs_positives is probe_loss.needs_positives


def test_the_registered_losses_refuse_what_the_former_list_refused():
    needy = {name for name in LOSSES.names() if needs_positives({"name": name})}
    assert needy == FORMER_NEEDS_POSITIVES | {"horde", "density_adaptivity"}  # wrappers: their default base's answer
    assert not needs_positives({"name": "no_such_loss"}) and not needs_positives({"name": ["triplet"]})


def test_the_k1_refusal_names_each_loss_that_needs_positives(tmp_path):
    for name in sorted(FORMER_NEEDS_POSITIVES):
        with pytest.raises(ConfigError, match=f"data.k=1: loss '{name}' compares images of one identity"):
            _check_run(_config(tmp_path, [{"name": "softmax"}, {"name": name}]), tmp_path / "run", False, False)
    _check_run(_config(tmp_path, [{"name": "softmax"}]), tmp_path / "run", False, False)  # nothing to compare


def test_demo_backend_choices_are_the_search_backends():
    from reid.demo import build_parser
    from reid.inference.search_backends import BACKENDS, FAISS_KINDS

    action = next(a for a in build_parser()._actions if a.dest == "backend")
    assert tuple(action.choices) == BACKENDS == ("exact", *FAISS_KINDS)
    assert set(FAISS_KINDS.values()) == {"flat", "ivf", "hnsw"}  # FaissIndex's kinds


def test_evaluation_option_lists_are_the_schema_choices():
    from reid.evaluation import distance, metrics, ranking

    assert distance.METRICS == CHOICES["test.metric"]
    assert metrics.AP_KINDS == CHOICES["test.ap"]
    assert metrics.EMPTY_POLICIES == CHOICES["test.empty"]
    assert ranking.PROTOCOLS == CHOICES["test.protocol"]


def test_evaluation_messages_are_unchanged():
    from reid.evaluation import evaluate
    from reid.evaluation.distance import pairwise_distance
    from reid.evaluation.metrics import average_precision

    qf, gf = torch.randn(2, 4), torch.randn(5, 4)
    pids = (np.array([0, 1]), np.array([0, 1, 0, 1, 2]))
    cases = [({"ap": "bogus"}, "ap: expected 'mean' or 'official', got 'bogus'"),
             ({"empty": "bogus"}, "empty: expected 'skip' or 'zero', got 'bogus'"),
             ({"protocol": "bogus"}, "protocol: expected 'market' or 'single-shot', got 'bogus'")]
    for kwargs, message in cases:
        with pytest.raises(ValueError) as info:
            evaluate(qf, gf, *pids, **kwargs)
        assert str(info.value) == message
    with pytest.raises(ValueError) as info:
        average_precision(np.array([0]), kind="bogus")
    assert str(info.value) == "ap: expected 'mean' or 'official', got 'bogus'"
    with pytest.raises(ValueError) as info:
        pairwise_distance(qf, gf, "bogus")
    assert str(info.value) == "metric: expected one of ('euclidean', 'cosine'), got 'bogus'"


def _imports(path: Path) -> set:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add(("." * node.level) + (node.module or ""))
    return names


def test_evaluation_reads_the_schema_without_the_engine():
    for path in sorted((REID / "evaluation").glob("*.py")):
        bad = {n for n in _imports(path) if n.startswith(("reid.engine", "..engine"))}
        assert not bad, f"{path.name} imports {bad}"
    schema = _imports(REID / "config" / "schema.py")
    assert not {n for n in schema if n.split(".")[0] in ("torch", "numpy")}, schema
