"""The walk channel's lambda, epsilon per query group: queries with an open reverse neighbour
(some u -> q in training with q -> u not in training, so the test edge may be a reverse one)
and queries without one (every candidate the reverse edge could name is already linked).

Run from the repository root after `make run` (or `blade train`) on amazon0302, seed 42:
    python docs/experiments/fusion_open_reverse.py
Validation edges only (training's 5,000-edge sample); docs/decisions.md has what it printed.
"""
import torch
from fixed_walks import WALKS, WEIGHT_GRID

from models.encoder import score as embedding_score
from models.graph import reverse_exists
from models.training import validation_set
from models.walk_channel import fit_walk_channel, top_table
from pipeline.artifacts import load_split_graph

torch.set_num_threads(2)
graph = load_split_graph()
saved = torch.load("outputs/train/blade/embeddings.pt", weights_only=True)
S, T, scale = saved["source"], saved["target"], saved["scale"]
val = validation_set(graph, 5000, 42)
rows = lambda q: embedding_score(S[q], T, scale)  # noqa: E731
table = top_table(WALKS["walk on A + A^T"](graph.train, graph.num_nodes), graph.num_nodes, 32)

n = graph.num_nodes
# per query q: its open reverse neighbours, the u -> q in training with q -> u not in training
reverse_linked = reverse_exists(graph.train, graph.train, n)
open_reverse = torch.bincount(graph.train[1].long()[~reverse_linked], minlength=n)
queries = val.edges[0]
is_reverse = reverse_exists(val.edges, graph.train, n)
groups = {"no open reverse": open_reverse[queries] == 0, "open reverse": open_reverse[queries] > 0}


def fit(mask):
    return fit_walk_channel(rows, table, val.edges[:, mask], val.exclude_indptr, val.exclude_indices, weights=WEIGHT_GRID)


whole = fit(torch.ones_like(queries, dtype=torch.bool))
print(f"one lambda for all: lambda {whole['weight']} eps {whole['floor']}: "
      f"{whole['mrr@10_without']:.4f} -> {whole['mrr@10']:.4f}")
total = 0.0
for name, mask in groups.items():
    result = fit(mask)
    share = mask.float().mean().item()
    total += share * result["mrr@10"]
    grid = {(w, f): m for w, f, m in result["grid"]}
    at_whole = grid[(whole["weight"], whole["floor"])]
    print(f"{name}: {share:.1%} of edges, reverse in training {is_reverse[mask].float().mean():.1%}; "
          f"embeddings {result['mrr@10_without']:.4f}, shared lambda {at_whole:.4f}, "
          f"own lambda {result['weight']} eps {result['floor']} {result['mrr@10']:.4f}")
print(f"per-group lambda (in-sample): {total:.4f}")
# 2-fold cross-fit: each half's lambda per group is scored on the other half
half = torch.randperm(queries.numel(), generator=torch.Generator().manual_seed(0)) < queries.numel() // 2
out = 0.0
for fold in (half, ~half):
    for mask in groups.values():
        chosen = fit(mask & fold)
        scored = fit(mask & ~fold)
        grid = {(w, f): m for w, f, m in scored["grid"]}
        out += (mask & ~fold).float().sum().item() * grid[(chosen["weight"], chosen["floor"])]
print(f"per-group lambda (2-fold cross-fit): {out / queries.numel():.4f}")
