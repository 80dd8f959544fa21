"""Graph preparation before any split is written: raw ids to contiguous node ids, self-loops and
duplicate edges dropped, the seeded train / val / test partition of the edges.

Pure NumPy and pandas, so that ``blade ingest`` and the GPU check (``bench/gpu_check.py``, which
runs where only the model library's dependencies are installed) split a graph the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.config import ConfigError
from pipeline.readers import RawGraph

SPLITS = ("train", "val", "test")


@dataclass
class CleanGraph:
    """Edges over contiguous node ids 0..N-1. ``product_ids[i]`` is node i's raw id (str)."""

    source: np.ndarray  # int64 [E]
    target: np.ndarray  # int64 [E]
    product_ids: np.ndarray  # str object [N]
    self_loops_removed: int
    duplicates_removed: int

    @property
    def num_nodes(self) -> int:
        return len(self.product_ids)


def map_ids(raw: RawGraph) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Map raw ids to contiguous ints in sorted id order (numeric order for integer ids).

    Returns ``(source_idx, target_idx, product_ids)`` with ``product_ids[source_idx] == source``
    (as strings). Nodes the format lists without edges (npz) keep their place.
    """
    ids = np.concatenate([raw.source, raw.target])
    if raw.node_ids is not None:
        ids = np.concatenate([raw.node_ids.astype(ids.dtype), ids])
    codes, uniques = pd.factorize(ids, sort=True)
    offset = 0 if raw.node_ids is None else len(raw.node_ids)
    num_edges = len(raw.source)
    source_idx = codes[offset : offset + num_edges].astype(np.int64)
    target_idx = codes[offset + num_edges :].astype(np.int64)
    product_ids = np.asarray([str(value) for value in uniques], dtype=object)
    return source_idx, target_idx, product_ids


def clean_edges(raw: RawGraph) -> CleanGraph:
    """Map ids, then drop self-loops and duplicate edges (keeping the first occurrence)."""
    source, target, product_ids = map_ids(raw)
    loops = source == target
    source, target = source[~loops], target[~loops]
    keys = source * len(product_ids) + target
    _, first = np.unique(keys, return_index=True)
    first.sort()  # keep file order, so the split does not depend on the id order
    return CleanGraph(
        source=source[first],
        target=target[first],
        product_ids=product_ids,
        self_loops_removed=int(loops.sum()),
        duplicates_removed=int(len(keys) - len(first)),
    )


def split_edges(
    num_edges: int, ratios: dict[str, float], seed: int
) -> dict[str, np.ndarray]:
    """Seeded random partition of edge positions into train / val / test.

    Sizes: val = round(E * val), test = round(E * test), train = the rest.
    Returns sorted position arrays per split; together they are a partition of 0..E-1.
    """
    missing = [name for name in SPLITS if name not in ratios]
    if missing:
        raise ConfigError(f"params.yaml: ingest.split needs {', '.join(SPLITS)}; missing {missing}")
    values = {name: float(ratios[name]) for name in SPLITS}
    if any(value < 0 for value in values.values()) or values["train"] <= 0:
        raise ConfigError(f"params.yaml: ingest.split ratios must be >= 0, train > 0: {values}")
    if abs(sum(values.values()) - 1.0) > 1e-6:
        raise ConfigError(f"params.yaml: ingest.split ratios must sum to 1, got {sum(values.values())}")
    permutation = np.random.default_rng(seed).permutation(num_edges)
    num_val = int(round(num_edges * values["val"]))
    num_test = int(round(num_edges * values["test"]))
    num_train = num_edges - num_val - num_test
    bounds = np.cumsum([0, num_train, num_val, num_test])
    return {name: np.sort(permutation[bounds[i] : bounds[i + 1]]) for i, name in enumerate(SPLITS)}
