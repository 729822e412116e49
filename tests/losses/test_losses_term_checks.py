"""A `loss.terms` entry is checked in one place (`reid.losses.combined.check_term`): the config's builder and
`CombinedLoss` refuse the same entries with the same words (the builder as a ConfigError)."""
from __future__ import annotations

import pytest

from reid.builders import build_losses_from_config
from reid.config import ConfigError
from reid.losses import CombinedLoss, LOSSES
from reid.losses.combined import check_term


@pytest.mark.parametrize("term,message", [
    ("triplet", "loss.terms[0]: expected a mapping such as {name: triplet}, got 'triplet'"),
    ({"weight": 1.0}, "loss.terms[0] has no 'name': {'weight': 1.0}"),
])
def test_the_builder_and_the_combined_loss_refuse_a_term_alike(term, message):
    with pytest.raises(ValueError) as direct:
        CombinedLoss([term])
    with pytest.raises(ConfigError) as built:
        build_losses_from_config({"loss": {"terms": [term]}}, num_classes=3)
    assert str(direct.value) == str(built.value) == message


def test_an_unknown_loss_names_the_closest_one_both_ways():
    with pytest.raises(KeyError) as direct:
        CombinedLoss([{"name": "softmax"}, {"name": "tripet"}])
    with pytest.raises(ConfigError) as built:
        build_losses_from_config({"loss": {"terms": [{"name": "softmax"}, {"name": "tripet"}]}}, num_classes=3)
    assert direct.value.args[0].startswith("unknown loss 'tripet'. Did you mean 'triplet'?")
    assert str(built.value) == f"loss.terms[1].name: {direct.value.args[0]}"


def test_check_term_returns_the_entry_and_its_class():
    term = {"name": "triplet", "margin": 0.3}
    checked, cls = check_term(0, term)
    assert checked == term and checked is not term and cls is LOSSES.get("triplet")
