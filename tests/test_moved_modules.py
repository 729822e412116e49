"""Modules moved into packages (issue 27) keep their old import paths for one release: importing an old path
warns (DeprecationWarning) and gives the very module it moved to, so every object and every patch is shared."""
from __future__ import annotations

import importlib
import sys

import pytest

MOVED = {
    "reid.demo_cache": "reid.demo.cache", "reid.demo_output": "reid.demo.output", "reid.demo_page": "reid.demo.page",
    "reid.config_schema": "reid.config.schema", "reid.config_names": "reid.config.names",
    "reid.search_backends": "reid.inference.search_backends", "reid.export": "reid.inference.export",
    "reid.cli_evaluate": "reid.cli.evaluate", "reid.cli_export": "reid.cli.export",
    "reid.cli_dataset": "reid.cli.dataset", "reid.outputs": "reid.cli.outputs", "reid.progress": "reid.utils.progress",
}


def _import_fresh(name: str):
    sys.modules.pop(name, None)  # an earlier import is cached: the shim (and its warning) runs only once
    return importlib.import_module(name)


@pytest.mark.parametrize("old, new", sorted(MOVED.items()))
def test_an_old_path_warns_and_is_the_moved_module(old, new):
    with pytest.warns(DeprecationWarning, match=rf"{old} has moved to {new}; import it from there"):
        module = _import_fresh(old)
    assert module is importlib.import_module(new)
    assert sys.modules[old] is module


def test_names_from_old_paths_are_the_same_objects():
    with pytest.warns(DeprecationWarning):
        search_backends = _import_fresh("reid.search_backends")
        config_schema = _import_fresh("reid.config_schema")
    from reid.config import DEFAULTS, ConfigError, choices
    from reid.inference import FaissIndex, exact_search
    from reid.utils.optional import import_faiss

    assert search_backends.exact_search is exact_search and search_backends.FaissIndex is FaissIndex
    assert search_backends.import_faiss is import_faiss
    assert config_schema.ConfigError is ConfigError and config_schema.DEFAULTS is DEFAULTS
    assert config_schema.choices is choices and choices("test.ap") == ("mean", "official")


def test_the_packages_keep_the_names_of_the_modules_they_replace():
    import reid
    from reid import cli, config, demo, inference

    assert reid.FeatureExtractor is inference.FeatureExtractor and reid.search is inference.search
    assert config.load_config is importlib.import_module("reid.config.loading").load_config
    assert config.ConfigError is importlib.import_module("reid.config.schema").ConfigError
    assert cli.train_main is importlib.import_module("reid.cli.commands").train_main
    assert demo.main is importlib.import_module("reid.demo.run").main
    assert issubclass(config.ConfigError, ValueError)
