"""The walk channel's table on a graph with hubs: the selection of 2026-12-07 (a6e645f, one
lexsort of every entry of 4,096-row chunks) against the shipped one (chunks sized by their
entries, each row cut at its width-th largest value before the sort). Same table, time of each.

    python docs/experiments/walk_table_scaling.py generate /tmp/hubs.csv   # Slashdot-like digraph
    python docs/experiments/walk_table_scaling.py time /tmp/hubs.csv [old]  # 'old' adds a6e645f's
    python docs/experiments/walk_table_scaling.py time data/amazon0302/amazon0302.txt.gz old
    python docs/experiments/walk_table_scaling.py generate-talk /tmp/talk.csv  # wiki-Talk-like
    python docs/experiments/walk_table_scaling.py estimate /tmp/talk.csv       # from 2,000 rows

The generated graph: 77,000 nodes, Chung-Lu weights i^-0.55 (maximum degree about 4,600), about
846,000 edges, 84% of them reciprocal, the size and reciprocity of a Slashdot-like social graph.
Its 3-step walk rows hold about three quarters of all nodes. Timing uses the training edges
that `blade ingest` makes of the file with the defaults (split seed 42, 75% of the edges).

The wiki-Talk-like graph (``generate-talk``): 1,000,000 nodes, about 2,000,000 edges, Chung-Lu
with out-weights i^-0.9 (a few nodes write to a large share of the graph) and in-weights
i^-0.5, the shape of a talk-page graph. ``estimate`` times the shipped table code (the rows'
products and their cut at the 32nd value, not the small sort after it) on a seeded sample of
2,000 rows of each of the four walks the channel's search builds, and scales the time to every
node, since building the whole table there is what the estimate is about.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd
import torch

from models.baselines import rp3beta_scores, walk_scores
from models.walk_channel import WalkTable, _row_top, top_table
from pipeline.edges import clean_edges, split_edges
from pipeline.readers import read_edges
from pipeline.settings import SplitSettings


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


def generate_talk(path: str) -> None:
    rng = np.random.default_rng(0)
    nodes, pairs = 1_000_000, 2_100_000
    out_weight = np.arange(1, nodes + 1) ** -0.9
    in_weight = rng.permutation(np.arange(1, nodes + 1) ** -0.5)
    source = rng.choice(nodes, pairs, p=out_weight / out_weight.sum())
    target = rng.choice(nodes, pairs, p=in_weight / in_weight.sum())
    key = np.unique(source * nodes + target)
    source, target = key // nodes, key % nodes
    distinct = source != target
    source, target = source[distinct], target[distinct]
    pd.DataFrame({"source": [f"n{x}" for x in source],
                  "target": [f"n{x}" for x in target]}).to_csv(path, index=False)
    print(f"{path}: {source.size:,} edges, largest out-degree {np.bincount(source).max():,}, "
          f"largest in-degree {np.bincount(target).max():,}")


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


def read_training_edges(path: str) -> tuple[torch.Tensor, int]:
    """The training edges `blade ingest` would make of the file with the defaults (the project's
    reader, self-loops and duplicates removed, seed 42's split) and the node count."""
    graph = clean_edges(read_edges(path))
    train = split_edges(len(graph.source), SplitSettings().model_dump(), seed=42)["train"]
    edges = torch.from_numpy(np.stack([graph.source[train], graph.target[train]]).astype(np.int64))
    return edges, len(graph.product_ids)


def estimate_tables(path: str, sample: int = 2000) -> None:
    edges, nodes = read_training_edges(path)
    rows = np.sort(np.random.default_rng(0).choice(nodes, sample, replace=False))
    total = 0.0
    for name, walk in training_walks(edges, nodes, all_four=True).items():
        started, entries = time.perf_counter(), 0
        for start in range(0, sample, 64):
            block = walk.raw_rows(rows[start:start + 64])
            entries += block.nnz
            _row_top(block, rows[start:start + 64], 32)
        seconds = time.perf_counter() - started
        print(f"{name}: {nodes:,} nodes, {entries / sample:,.0f} entries per row, {seconds:.1f} s "
              f"for {sample:,} rows: about {seconds * nodes / sample / 60:,.0f} min for the table",
              flush=True)
        total += seconds * nodes / sample
    print(f"the four tables: about {total / 60:,.0f} min per split (a whole build took 1.3-1.5 "
          "times the estimate on the generated graphs)")


def training_walks(edges: torch.Tensor, nodes: int, all_four: bool = False) -> dict:
    """The walks timed; ``all_four``: every walk the channel's search builds a table of."""
    walks = {"walk on A + A^T (1, 3, 3)": walk_scores(edges, nodes, (1, 3, 3), True),
             "RP3beta on A (0.5, 0.2)": rp3beta_scores(edges, nodes, 0.5, 0.2, False)}
    if all_four:
        walks |= {"walk on A (1, 3, 3)": walk_scores(edges, nodes, (1, 3, 3), False),
                  "RP3beta on A + A^T (0.5, 0.2)": rp3beta_scores(edges, nodes, 0.5, 0.2, True)}
    return walks


def time_tables(path: str, with_old: bool) -> None:
    edges, nodes = read_training_edges(path)
    for name, walk in training_walks(edges, nodes).items():
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
    elif sys.argv[1] == "generate-talk":
        generate_talk(sys.argv[2])
    elif sys.argv[1] == "estimate":
        estimate_tables(sys.argv[2])
    else:
        time_tables(sys.argv[2], with_old=sys.argv[3:] == ["old"])
