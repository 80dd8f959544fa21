"""Reading params.yaml: one place that knows the file and how to report a bad key."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml

DEFAULT_PARAMS = Path("params.yaml")


class ConfigError(ValueError):
    """A params.yaml value is missing or out of range; the message names the key."""


class StageError(RuntimeError):
    """A stage refused to go on (a failed check, an unusable device); the message says why and
    what to do. The CLI prints it without a traceback and exits with 2."""


def load_params(path: str | Path = DEFAULT_PARAMS) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: parameters file not found (run from the project root)")
    with path.open() as handle:
        params = yaml.safe_load(handle) or {}
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(params).__name__}")
    return params


def section(params: dict[str, Any], name: str) -> dict[str, Any]:
    """One top-level section of params.yaml, with a clear error if it is absent."""
    if name not in params or not isinstance(params[name], dict):
        raise ConfigError(f"params.yaml: section '{name}' is missing or not a mapping")
    return params[name]


def apply_overrides(params: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` overrides (YAML-typed values), as ``dvc exp run -S`` does."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override '{item}': expected KEY=VALUE, e.g. train.max_epochs=3")
        node = params
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{item}': '{part}' is not a section")
        node[leaf] = yaml.safe_load(raw)
    return params


def with_values(params: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of ``params`` with ``{"section.key": value}`` set (e.g. a tuning trial's values)."""
    overrides = [f"{key}={json.dumps(value)}" for key, value in values.items()]
    return apply_overrides(copy.deepcopy(params), overrides)
