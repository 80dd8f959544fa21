"""Stage ``ingest``: raw edge list -> contiguous node ids, clean edges, seeded train/val/test split.

    blade ingest                       # reads params.yaml (sections base, ingest)
    blade ingest --set ingest.edges=data/cora_ml/cora_ml.npz

Outputs (atomically, as a whole directory): ``outputs/ingest/`` with ``nodes.parquet``
(node, product_id), ``train.parquet`` / ``val.parquet`` / ``test.parquet`` (source, target as
node ints), ``features.npz`` when the input has node features; metrics ``metrics/ingest.json``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from pipeline.config import ConfigError
from pipeline.readers import RawGraph, read_edges, verify_checksum
from pipeline.settings import typed
from pipeline.storage import atomic_directory, whole_outputs, write_json, write_parquet

log = logging.getLogger(__name__)

OUTPUT_DIR = Path("outputs/ingest")
METRICS_PATH = Path("metrics/ingest.json")
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


def ingest(
    edges: str | Path,
    output_dir: Path,
    *,
    fmt: str,
    source_column: str,
    target_column: str,
    id_type: str,
    split: dict[str, float],
    seed: int,
    verify_checksums: bool,
) -> dict[str, Any]:
    """Read, clean, split and write. Returns the metrics dictionary."""
    edges = Path(edges)
    checksum = verify_checksum(edges) if verify_checksums else None
    raw = read_edges(edges, fmt, source_column, target_column, id_type)
    graph = clean_edges(raw)
    if len(graph.source) == 0:
        raise ConfigError(f"{edges}: no edges left after removing self-loops and duplicates")
    parts = split_edges(len(graph.source), split, seed)
    with atomic_directory(output_dir) as tmp:
        write_parquet(tmp / "nodes.parquet", pd.DataFrame(
            {"node": np.arange(graph.num_nodes, dtype=np.int64), "product_id": graph.product_ids}
        ))
        for name, positions in parts.items():
            write_parquet(tmp / f"{name}.parquet", pd.DataFrame(
                {"source": graph.source[positions], "target": graph.target[positions]}
            ))
        if raw.features is not None:
            sp.save_npz(tmp / "features.npz", raw.features.tocsr().astype(np.float32))
    return {
        "source_file": str(edges),
        "sha256_verified": checksum is not None,
        "nodes": graph.num_nodes,
        "raw_edges": int(len(raw.source)),
        "self_loops_removed": graph.self_loops_removed,
        "duplicates_removed": graph.duplicates_removed,
        "edges": int(len(graph.source)),
        **{f"{name}_edges": int(len(positions)) for name, positions in parts.items()},
        "has_features": raw.features is not None,
        "seed": seed,
    }


@whole_outputs
def main(params: dict[str, Any]) -> dict[str, Any]:
    settings = typed(params)
    config = settings.ingest
    started = time.perf_counter()
    metrics = ingest(
        config.edges,
        OUTPUT_DIR,
        fmt=config.format,
        source_column=config.source_column,
        target_column=config.target_column,
        id_type=config.id_type,
        split=config.split.model_dump(),
        seed=settings.base.seed,
        verify_checksums=config.verify_checksums,
    )
    metrics["seconds"] = round(time.perf_counter() - started, 2)
    write_json(METRICS_PATH, metrics)
    log.info(
        "ingest: %s nodes, %s edges (%s self-loops, %s duplicates removed); split "
        "train/val/test = %s/%s/%s; %.1f s",
        f"{metrics['nodes']:,}", f"{metrics['edges']:,}", metrics["self_loops_removed"],
        metrics["duplicates_removed"], f"{metrics['train_edges']:,}", f"{metrics['val_edges']:,}",
        f"{metrics['test_edges']:,}", metrics["seconds"],
    )
    return metrics
