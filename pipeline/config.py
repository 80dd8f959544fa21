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


MAX_YAML_VALUES = 100_000  # values a parameters file may expand to through its aliases


class _StrictLoader(yaml.SafeLoader):
    """YAML as DVC reads it: a repeated key is an error (not "the later one wins"), and aliases
    (``*name``, as params.yaml's ablation rows use them) may not expand the file beyond
    :data:`MAX_YAML_VALUES` values, so a 1 kB file cannot become gigabytes ("billion laughs")."""

    def get_single_node(self):
        node = super().get_single_node()
        if node is not None:
            sizes: dict[int, int] = {}
            if _expanded_size(node, sizes) > MAX_YAML_VALUES:
                raise yaml.MarkedYAMLError(
                    problem=f"expands to more than {MAX_YAML_VALUES} values through its aliases "
                            "(*name); write the values out",
                    problem_mark=self._first_alias or node.start_mark)
        return node

    _first_alias = None

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent) and self._first_alias is None:
            self._first_alias = self.peek_event().start_mark
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # '<<: *row' merges, it is not a key
                continue
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.MarkedYAMLError(problem=f"duplicate key {key!r}", problem_mark=key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """How many values ``node`` stands for once every alias is written out (memoised: an alias
    is the same node object as its anchor, so this is linear in the file, not in the expansion)."""
    if id(node) in sizes:
        return sizes[id(node)]
    sizes[id(node)] = 1  # a cycle (a recursive alias) counts once
    if isinstance(node, yaml.SequenceNode):
        total = 1 + sum(_expanded_size(child, sizes) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        total = 1 + sum(_expanded_size(key, sizes) + _expanded_size(value, sizes)
                        for key, value in node.value)
    else:
        total = 1
    sizes[id(node)] = total
    return total


def read_yaml(path: str | Path) -> Any:
    """A YAML file read strictly (:class:`_StrictLoader`); any problem is one
    :class:`ConfigError` naming the file, line and column."""
    path = Path(path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[:error.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: byte {error.start} ({raw[error.start:error.start + 1]!r}) "
                          "is not UTF-8") from None
    loader = _StrictLoader(text)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = " ".join(str(error.problem or error.context or "invalid YAML").split())
        raise ConfigError(f"{path}{where}: {problem}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: {' '.join(str(error).split())}") from None
    finally:
        loader.dispose()


def load_params(path: str | Path = DEFAULT_PARAMS) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: parameters file not found (run from the project root)")
    params = read_yaml(path) or {}
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
