"""Validation MRR@10 of a saved BLADE model, overall and on the two kinds of edge: the
embeddings alone, and with the walk channel (walk on A + A^T, lambda and epsilon refitted on
the same edges, as training does).

Run from the repository root after `blade ingest` and `blade degree-stats` on amazon0302
(seed 42) and a `blade train --set 'train.variants=[blade]' --set train.use_tuned=false ...`:
    python docs/experiments/embedding_subsets.py outputs/train/blade/embeddings.pt LABEL
Validation edges only (training's 5,000-edge sample); docs/decisions.md has what it printed.
"""
import sys

import torch
from fixed_walks import WALKS, WEIGHT_GRID

from models.encoder import score as embedding_score
from models.graph import reverse_exists
from models.training import validation_set
from models.walk_channel import fit_walk_channel, top_table
from pipeline.artifacts import load_split_graph

torch.set_num_threads(2)
path, label = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else sys.argv[1]
graph = load_split_graph()
saved = torch.load(path, weights_only=True)
source, target, scale = saved["source"], saved["target"], saved["scale"]
val = validation_set(graph, 5000, 42)
rows = lambda q: embedding_score(source[q], target, scale)  # noqa: E731
table = top_table(WALKS["walk on A + A^T"](graph.train, graph.num_nodes), graph.num_nodes, 32)
reverse_in_training = reverse_exists(val.edges, graph.train, graph.num_nodes)
whole = fit_walk_channel(rows, table, val.edges, val.exclude_indptr, val.exclude_indices, weights=WEIGHT_GRID)
weight, floor = whole["weight"], whole["floor"]
alone, fused = {}, {}
subsets = {"all": torch.ones_like(reverse_in_training), "reverse in training": reverse_in_training,
           "one-way": ~reverse_in_training}
for name, mask in subsets.items():
    fit = fit_walk_channel(rows, table, val.edges[:, mask], val.exclude_indptr, val.exclude_indices,
                           weights=(0.0, weight), floors=(floor,))
    grid = {(w, f): mrr for w, f, mrr in fit["grid"]}
    alone[name], fused[name] = grid[(0.0, floor)], grid[(weight, floor)]
print(f"{label}: lambda {weight} eps {floor} | embeddings all / reverse / one-way "
      + " / ".join(f"{alone[name]:.4f}" for name in subsets)
      + " | with the channel " + " / ".join(f"{fused[name]:.4f}" for name in subsets))
