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
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from pipeline.config import ConfigError
from pipeline.edges import clean_edges, split_edges
from pipeline.input_files import verify_checksum
from pipeline.readers import read_edges
from pipeline.settings import typed
from pipeline.storage import atomic_directory, whole_outputs, write_json, write_parquet

log = logging.getLogger(__name__)

OUTPUT_DIR = Path("outputs/ingest")
METRICS_PATH = Path("metrics/ingest.json")
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
    empty = [name for name in ("val", "test") if split[name] > 0 and len(parts[name]) == 0]
    if empty or len(parts["train"]) == 0:
        raise ConfigError(
            f"{edges}: {len(graph.source)} edges split {split['train']:g}/{split['val']:g}/{split['test']:g} "
            f"leave {' and '.join(empty or ['train'])} without edges; training needs validation edges "
            "and evaluation test edges: give a larger graph (or ingest.split)")
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
