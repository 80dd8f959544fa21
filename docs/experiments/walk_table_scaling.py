"""The walk channel's table on a graph with hubs: the selection of 2026-12-07 (a6e645f, one
lexsort of every entry of 4,096-row chunks) against the shipped one (chunks sized by their
entries, each row cut at its width-th largest value before the sort). Same table, time of each.

    python docs/experiments/walk_table_scaling.py generate /tmp/hubs.csv   # Slashdot-like digraph
    python docs/experiments/walk_table_scaling.py time /tmp/hubs.csv [old]  # 'old' adds a6e645f's
    python docs/experiments/walk_table_scaling.py time data/amazon0302/amazon0302.txt.gz old

The generated graph: 77,000 nodes, Chung-Lu weights i^-0.55 (maximum degree about 4,600), about
846,000 edges, 84% of them reciprocal, the size and reciprocity of a Slashdot-like social graph.
Its 3-step walk rows hold about three quarters of all nodes. Timing uses 75% of the edges (a
training split's share).
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd
import torch

from models.baselines import rp3beta_scores, walk_scores
from models.walk_channel import WalkTable, top_table


def generate(path: str) -> None:
    rng = np.random.default_rng(0)
    nodes, pairs = 77_000, 490_000
    weight = np.arange(1, nodes + 1) ** -0.55
    weight /= weight.sum()
    u, v = rng.choice(nodes, pairs, p=weight), rng.choice(nodes, pairs, p=weight)
    distinct = u != v
    u, v = u[distinct], v[distinct]
    key = np.unique(np.minimum(u, v) * nodes + np.maximum(u, v))
    u, v = key // nodes, key % nodes
    both, flip = rng.random(u.size) < 0.73, rng.random(u.size) < 0.5  # 2 * 0.73 / 1.73: 84%
    source = np.concatenate([np.where(flip, v, u), np.where(flip, u, v)[both]])
    target = np.concatenate([np.where(flip, u, v), np.where(flip, v, u)[both]])
    names = rng.permutation(nodes)
    pd.DataFrame({"source": [f"n{x}" for x in names[source]],
                  "target": [f"n{x}" for x in names[target]]}).to_csv(path, index=False)
    print(f"{path}: {source.size:,} edges, largest degree {np.bincount(np.r_[source, target]).max():,}")


def old_top_table(recommender, num_nodes: int, width: int, chunk_size: int = 4096) -> WalkTable:
    """a6e645f's models.walk_channel.top_table."""
    index = torch.arange(num_nodes).reshape(-1, 1).repeat(1, width)
    value = torch.zeros(num_nodes, width, dtype=torch.float32)
    for start in range(0, num_nodes, chunk_size):
        nodes = np.arange(start, min(start + chunk_size, num_nodes))
        coo = recommender.raw_rows(nodes).tocoo()
        keep = (coo.col != nodes[coo.row]) & (coo.data > 0)
        row, col, data = coo.row[keep], coo.col[keep], coo.data[keep]
        order = np.lexsort((col, -data, row))
        row, col, data = row[order], col[order], data[order]
        first = np.searchsorted(row, np.arange(nodes.size))
        slot = np.arange(row.size) - first[row]
        top = slot < width
        rows = torch.from_numpy(nodes[row[top]].astype(np.int64))
        slots = torch.from_numpy(slot[top].astype(np.int64))
        index[rows, slots] = torch.from_numpy(col[top].astype(np.int64))
        value[rows, slots] = torch.from_numpy(data[top].astype(np.float32))
    reached = value[:, 0] > 0
    value /= value[reached, 0].mean()
    return WalkTable(index=index, value=value)


def time_tables(path: str, with_old: bool) -> None:
    if path.endswith(".csv"):
        frame = pd.read_csv(path)
        source, target = frame["source"], frame["target"]
    else:
        frame = pd.read_csv(path, sep="\t", comment="#", header=None)
        source, target = frame[0], frame[1]
    codes, _ = pd.factorize(pd.concat([source, target]))
    edges = torch.from_numpy(np.stack([codes[:len(source)], codes[len(source):]]).astype(np.int64))
    edges = edges[:, torch.rand(edges.shape[1], generator=torch.Generator().manual_seed(0)) < 0.75]
    nodes = int(codes.max()) + 1
    walks = {"walk on A + A^T (1, 3, 3)": walk_scores(edges, nodes, (1, 3, 3), True),
             "RP3beta on A (0.5, 0.2)": rp3beta_scores(edges, nodes, 0.5, 0.2, False)}
    for name, walk in walks.items():
        started = time.perf_counter()
        table = top_table(walk, nodes, 32)
        line = f"{name}: {nodes:,} nodes, shipped {time.perf_counter() - started:.1f} s"
        if with_old:
            started = time.perf_counter()
            old = old_top_table(walk, nodes, 32)
            same = torch.equal(old.index, table.index) and torch.equal(old.value, table.value)
            line += f", a6e645f's {time.perf_counter() - started:.1f} s, identical tables: {same}"
        print(line, flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "generate":
        generate(sys.argv[2])
    else:
        time_tables(sys.argv[2], with_old=sys.argv[3:] == ["old"])
