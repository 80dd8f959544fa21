"""The walk channel's table with the query's training out-neighbours left out. Filtered ranking
(and `blade score --exclude-linked`) never recommends them, yet the shipped table
(models.walk_channel.top_table) keeps them among a node's 32 entries. On a graph with hubs a
node with hundreds of out-neighbours may have no useful entry left, so the channel cannot carry
the walk where its embeddings are weakest. Validation MRR@10 of each of the four walks at its
baseline's grid point: alone, and as the channel of a saved model (lambda, epsilon refitted as
training does) with the shipped table and with the table without out-neighbours. Validation
edges only; no test edge is scored.

Run from the repository root after `blade ingest`, `blade train` and `blade evaluate` (for the
baselines' grid points) on one graph:
    python docs/experiments/table_without_linked.py outputs/train/blade/embeddings.pt metrics/evaluate.json
docs/decisions.md has what it printed.
"""
import json
import sys
import time

import numpy as np
import scipy.sparse as sp
import torch

from models.baselines import binary_adjacency, choose_on_validation, rp3beta_scores, walk_scores
from models.evaluation import saved_scorers
from models.graph import in_out_degrees
from models.training import validation_set
from models.walk_channel import TABLE_WIDTH, fit_walk_channel, top_table
from pipeline.artifacts import load_split_graph

torch.set_num_threads(2)
graph = load_split_graph()
n = graph.num_nodes
saved = torch.load(sys.argv[1], weights_only=True)
settings = json.load(open(sys.argv[2]))["methods"]
embedding_only = dict(saved, walk_channel=None)
rows = saved_scorers(embedding_only)[0]
val = validation_set(graph, 5000, 42)
linked = binary_adjacency(graph.train, n, symmetric=False)
_, out_degree = in_out_degrees(graph.train, n)
print(f"{n} nodes, {graph.train.shape[1]} training edges; out-degree: mean {out_degree.float().mean():.1f}, "
      f"max {int(out_degree.max())}, share of nodes above {TABLE_WIDTH}: "
      f"{(out_degree > TABLE_WIDTH).float().mean():.4f}; {val.edges.shape[1]} validation edges")


class WithoutLinked:
    """A recommender's raw rows with each query's training out-neighbours set to 0."""

    def __init__(self, recommender):
        self.recommender = recommender

    def raw_rows(self, queries: np.ndarray) -> sp.csr_matrix:
        block = self.recommender.raw_rows(queries)
        block = (block - block.multiply(linked[queries])).tocsr()
        block.eliminate_zeros()
        return block


def chosen(name):
    return settings[name]["settings"]["chosen"]


walks = {
    "walk on A + A^T": walk_scores(graph.train, n, chosen("walk")["weights"], symmetric=True),
    "walk on A": walk_scores(graph.train, n, chosen("walk_directed")["weights"], symmetric=False),
    "RP3beta on A + A^T": rp3beta_scores(graph.train, n, symmetric=True, **chosen("rp3beta")),
    "RP3beta on A": rp3beta_scores(graph.train, n, symmetric=False, **chosen("rp3beta_directed")),
}
embeddings = fit_walk_channel(rows, top_table(walks["walk on A"], n, 1), val.edges, val.exclude_indptr,
                              val.exclude_indices, weights=(0.0,))["mrr@10"]
print(f"embeddings alone {embeddings:.4f}")
print("walk | alone | channel, shipped table (lambda, eps) | channel, table without out-neighbours")
for name, recommender in walks.items():
    started = time.time()
    alone = choose_on_validation(lambda r=recommender: r, [{}], val.edges, val.exclude_indptr,
                                 val.exclude_indices, n)[1][0]["val_mrr@10"]
    cells = []
    for table in (top_table(recommender, n, TABLE_WIDTH),
                  top_table(WithoutLinked(recommender), n, TABLE_WIDTH)):
        fit = fit_walk_channel(rows, table, val.edges, val.exclude_indptr, val.exclude_indices)
        cells.append(f"{fit['mrr@10']:.4f} ({fit['weight']:g}, {fit['floor']:g})")
    print(f"{name} | {alone:.4f} | {cells[0]} | {cells[1]} ({time.time() - started:.0f} s)", flush=True)
