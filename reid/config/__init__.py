"""Experiment configuration: the schema (every key, its default and allowed values, ConfigError), the key names
other projects use (aliases) and the packaged config files, and loading YAML files with `_base_` and overrides.

Imports only reid.utils and reid.registry, so every layer may read a config. The public names are re-exported
here: `from reid.config import load_config, ConfigError, DEFAULTS`.
"""
from __future__ import annotations

from .loading import (TRANSFORM_RANGES, check_transforms, flatten, iter_config_files, load_config, merge,
                      parse_override, resume_conflicts, save_config)
from .names import ALIASES, apply_aliases, canonical_key, config_names, find_config, packaged_configs_dir
from .schema import (CHOICES, DEFAULTS, OPEN_SECTIONS, RANGES, REGISTERED, RESUME_SAFE_PREFIXES, ConfigError,
                     choices, registry)

__all__ = ["ALIASES", "CHOICES", "DEFAULTS", "OPEN_SECTIONS", "RANGES", "REGISTERED", "RESUME_SAFE_PREFIXES",
           "TRANSFORM_RANGES", "ConfigError", "apply_aliases", "canonical_key", "check_transforms", "choices",
           "config_names", "find_config", "flatten", "iter_config_files", "load_config", "merge",
           "packaged_configs_dir", "parse_override", "registry", "resume_conflicts", "save_config"]
