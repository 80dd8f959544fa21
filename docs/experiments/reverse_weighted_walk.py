"""The truncated walk on A + gamma A^T: the reverse edge weighted between the directed walk
(gamma 0) and the symmetrised one (the shipped "walk on A + A^T" makes A + A^T binary; here a
reciprocal pair weighs 1 + gamma). Validation MRR@10 of the walk alone, of a saved BLADE
model's embeddings with it as walk channel (lambda, epsilon refitted as training does), and of
it as a second channel on top of the saved model's own, overall and on the two kinds of
validation edge. Validation edges only; no test edge is scored.

Run from the repository root after `dvc repro train` (amazon0302, seed 42):
    python docs/experiments/reverse_weighted_walk.py outputs/train/blade/embeddings.pt 0 0.1 0.25 0.5 1 2 4
docs/decisions.md has what it printed.
"""
import sys
import time

import torch

from models.baselines import (
    SparseRecommender,
    _selector,
    binary_adjacency,
    choose_on_validation,
    popularity_fallback,
    transition_matrix,
    walk_scores,
)
from models.evaluation import saved_scorers
from models.graph import reverse_exists
from models.training import validation_set
from models.walk_channel import TABLE_WIDTH, WEIGHT_GRID, fit_walk_channel, top_table
from pipeline.artifacts import load_split_graph

STEPS = (1.0, 3.0, 3.0)  # the step weights amazon0302's walk baselines choose
SECOND_GRID = (0.0, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)  # lambda2 of the second channel

torch.set_num_threads(2)
graph = load_split_graph()
n = graph.num_nodes
saved = torch.load(sys.argv[1], weights_only=True)
val = validation_set(graph, 5000, 42)
rows = saved_scorers(dict(saved, walk_channel=None))[0]  # the embeddings alone
shipped = saved_scorers(saved)[0]  # the embeddings with the model's own walk channel
reverse_in_training = reverse_exists(val.edges, graph.train, n)
subsets = {"all": torch.ones_like(reverse_in_training), "reverse": reverse_in_training,
           "one-way": ~reverse_in_training}


def reverse_weighted_walk(gamma: float) -> SparseRecommender:
    forward = binary_adjacency(graph.train, n, symmetric=False)
    transition = transition_matrix((forward + gamma * forward.T).tocsr())

    def factors(queries):
        terms, position = [], _selector(queries, n)
        for h, weight in enumerate(STEPS):
            terms.append((weight, position, transition))
            if h < len(STEPS) - 1:
                position = position @ transition
        return terms

    return SparseRecommender(factors, popularity_fallback(graph.train, n))


walks = {"shipped A + A^T (binary)": lambda: walk_scores(graph.train, n, STEPS, symmetric=True)}
walks |= {f"A + {float(g):g} A^T": (lambda g=float(g): reverse_weighted_walk(g)) for g in sys.argv[2:]}
print("walk | alone: all / reverse / one-way | embeddings + it as channel (lambda, eps) "
      "| shipped model + it as second channel (lambda2, eps2)")
for name, build in walks.items():
    started = time.time()
    recommender = build()
    alone = {key: choose_on_validation(lambda r=recommender: r, [{}], val.edges[:, mask], val.exclude_indptr,
                                       val.exclude_indices, n)[1][0]["val_mrr@10"]
             for key, mask in subsets.items()}
    table = top_table(recommender, n, TABLE_WIDTH)
    cells = []
    for base, weights in ((rows, WEIGHT_GRID), (shipped, SECOND_GRID)):
        whole = fit_walk_channel(base, table, val.edges, val.exclude_indptr, val.exclude_indices,
                                 weights=weights)
        fused = {}
        for key, mask in subsets.items():
            fit = fit_walk_channel(base, table, val.edges[:, mask], val.exclude_indptr,
                                   val.exclude_indices, weights=(0.0, whole["weight"]),
                                   floors=(whole["floor"],))
            fused[key] = next(mrr for w, _, mrr in fit["grid"] if w == whole["weight"])
        cells.append(" / ".join(f"{fused[k]:.4f}" for k in subsets)
                     + f" ({whole['weight']:g}, {whole['floor']:g})")
    print(f"{name} | " + " / ".join(f"{alone[k]:.4f}" for k in subsets) + " | " + " | ".join(cells)
          + f" ({time.time() - started:.0f} s)", flush=True)
