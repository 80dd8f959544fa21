"""Loading what earlier stages wrote, as tensors for models/. One reader per artifact."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from pipeline.edges import SPLITS
from pipeline.ingest import OUTPUT_DIR as INGEST_DIR


@dataclass
class SplitGraph:
    """The ingested graph. Each split is ``edge_index`` LongTensor ``[2, E_split]``."""

    num_nodes: int
    product_ids: np.ndarray  # str object [N]
    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor
    features: sp.csr_matrix | None
    # the degree statistics' power-law fits of the training in-degrees, {d_min: alpha_hat or
    # None (infinite)}: what the samplers size neighbourhoods from (None: fitted where needed)
    alpha_hats: dict[int, float | None] | None = None

    @property
    def all_edges(self) -> torch.Tensor:
        return torch.cat([self.train, self.val, self.test], dim=1)


def load_split_graph(directory: str | Path = INGEST_DIR) -> SplitGraph:
    directory = Path(directory)
    if not (directory / "nodes.parquet").is_file():
        raise FileNotFoundError(f"{directory}/nodes.parquet not found: run `dvc repro ingest` first")
    nodes = pd.read_parquet(directory / "nodes.parquet")
    splits = {}
    for name in SPLITS:
        frame = pd.read_parquet(directory / f"{name}.parquet")
        splits[name] = torch.from_numpy(
            np.stack([frame["source"].to_numpy(np.int64), frame["target"].to_numpy(np.int64)])
        )
    features_path = directory / "features.npz"
    features = sp.load_npz(features_path) if features_path.is_file() else None
    return SplitGraph(
        num_nodes=len(nodes),
        product_ids=nodes["product_id"].to_numpy(dtype=object),
        features=features,
        **splits,
    )

