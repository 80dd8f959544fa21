"""A second walk channel from the directed walk (walk on A, steps 1, 3, 3) on top of a saved
BLADE model's fused score: can a pair score with a directed term pass popularity's direction
AUC without costing ranking? Per lambda2, epsilon2: validation MRR@10 (models.walk_channel's
grid search with the second table), direction AUC and paired accuracy over the one-way
validation edges, and the global link metric. Validation edges only; no test edge is scored.

Run from the repository root after `blade ingest` (the graph the model was trained on):
    python docs/experiments/directed_second_channel.py outputs/train/blade/embeddings.pt
docs/decisions.md has what it printed.
"""
import sys

import torch

from models.baselines import walk_scores
from models.evaluation import saved_scorers
from models.pair_metrics import direction_auc, global_link_metrics
from models.training import validation_set
from models.walk_channel import TABLE_WIDTH, WalkChannel, fit_walk_channel, pair_bonus, top_table
from pipeline.artifacts import load_split_graph

LAMBDAS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
FLOORS = (0.01, 0.1, 1.0)

torch.set_num_threads(2)
graph = load_split_graph()
saved = torch.load(sys.argv[1], weights_only=True)
rows, pairs = saved_scorers(saved)
val = validation_set(graph, 5000, 42)
pair_sets = (tuple(val.one_way), tuple(val.one_way.flip(0)), tuple(val.edges), tuple(val.non_edges))
table = top_table(walk_scores(graph.train, graph.num_nodes, (1.0, 3.0, 3.0), symmetric=False),
                  graph.num_nodes, TABLE_WIDTH)
fit = fit_walk_channel(rows, table, val.edges, val.exclude_indptr, val.exclude_indices,
                       weights=LAMBDAS, floors=FLOORS)
mrr = {(weight, floor): value for weight, floor, value in fit["grid"]}
print(f"MRR@10 chosen: lambda2 {fit['weight']:g}, eps2 {fit['floor']:g}: {fit['mrr@10']:.4f} "
      f"(without {fit['mrr@10_without']:.4f})")
base = [pairs(u.long(), v.long()) for u, v in pair_sets]
for floor in FLOORS:
    for weight in LAMBDAS:
        channel = WalkChannel(table.index, table.value, weight, floor)
        forward, backward, linked, unlinked = (
            score + pair_bonus(channel, u.long(), v.long()) for score, (u, v) in zip(base, pair_sets))
        link = global_link_metrics(linked, unlinked)
        print(f"eps2 {floor:g} lambda2 {weight:g}: MRR@10 {mrr[(weight, floor)]:.4f} direction AUC "
              f"{direction_auc(forward, backward):.4f} paired {(forward > backward).double().mean():.4f} "
              f"global AUC {link['auc']:.4f} Hits@50 {link['hits@50']:.4f}", flush=True)
