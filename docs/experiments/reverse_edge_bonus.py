"""A reverse-edge bonus on top of a saved model's fused score: a second channel whose table is
each query's training in-neighbours (x -> q in training: the candidates of the "reverse in
training" kind), lambda2 log(1 + W / eps2) with W the normalised one-step reverse walk. Fitted
as the walk channel is (validation MRR@10); then the two kinds of validation edge at the
chosen point. Validation edges only; no test edge is scored.

Run from the repository root after `dvc repro train` (amazon0302, seed 42):
    python docs/experiments/reverse_edge_bonus.py outputs/train/blade/embeddings.pt
docs/decisions.md has what it printed.
"""
import sys

import torch

from models.baselines import SparseRecommender, _selector, binary_adjacency, popularity_fallback
from models.evaluation import saved_scorers
from models.graph import reverse_exists
from models.training import validation_set
from models.walk_channel import TABLE_WIDTH, fit_walk_channel, top_table
from pipeline.artifacts import load_split_graph

LAMBDAS = (0.0, 0.0625, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
FLOORS = (0.01, 0.1, 1.0, 10.0, 100.0)

torch.set_num_threads(2)
graph = load_split_graph()
n = graph.num_nodes
shipped = saved_scorers(torch.load(sys.argv[1], weights_only=True))[0]
val = validation_set(graph, 5000, 42)
reverse = reverse_exists(val.edges, graph.train, n)
reverse_adjacency = binary_adjacency(graph.train, n, symmetric=False).T.tocsr()
one_step_back = SparseRecommender(lambda queries: [(1.0, _selector(queries, n), reverse_adjacency)],
                                  popularity_fallback(graph.train, n))
table = top_table(one_step_back, n, TABLE_WIDTH)
fit = fit_walk_channel(shipped, table, val.edges, val.exclude_indptr, val.exclude_indices,
                       weights=LAMBDAS, floors=FLOORS)
print(f"chosen lambda2 {fit['weight']:g}, eps2 {fit['floor']:g}: "
      f"{fit['mrr@10_without']:.4f} -> {fit['mrr@10']:.4f}")
for name, mask in {"reverse in training": reverse, "one-way": ~reverse}.items():
    part = fit_walk_channel(shipped, table, val.edges[:, mask], val.exclude_indptr, val.exclude_indices,
                            weights=(0.0, fit["weight"]), floors=(fit["floor"],))
    print(f"{name}: {part['mrr@10_without']:.4f} -> "
          + f"{next(m for w, _, m in part['grid'] if w == fit['weight']):.4f}")
