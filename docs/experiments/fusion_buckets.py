"""The walk channel's lambda and epsilon fitted per degree bucket of the query.

Run from the repository root after `blade ingest`, `blade degree-stats` and
`blade train --set 'train.variants=[blade]' --set train.use_tuned=false` on amazon0302 (seed 42):
    python docs/experiments/fusion_buckets.py
Validation edges only (training's 5,000-edge sample); docs/decisions.md has what it printed.
"""
import torch

from models.baselines import walk_scores
from models.encoder import score as embedding_score
from models.graph import in_out_degrees
from models.training import validation_set
from models.walk_channel import fit_walk_channel, top_table
from pipeline.artifacts import load_split_graph

torch.set_num_threads(2)
graph = load_split_graph()
saved = torch.load("outputs/train/blade/embeddings.pt", weights_only=True)
S, T, scale = saved["source"], saved["target"], saved["scale"]
val = validation_set(graph, 5000, 42)
rows0 = lambda q: embedding_score(S[q], T, scale)
E, N = graph.train, graph.num_nodes
table = top_table(walk_scores(E, N, (1, 3, 3), True), N, 32)
ind, outd = in_out_degrees(E, N)
q = val.edges[0]
W = (0, 1, 2, 4, 6, 8, 12, 16, 24, 32)
F = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 1.0)
for name, deg in (("in", ind), ("out", outd), ("in+out", ind + outd)):
    d = deg[q]
    qs = torch.quantile(d.float(), torch.tensor([0.25, 0.5, 0.75]))
    edges = [-1, *qs.tolist(), 1e9]
    total, count = 0.0, 0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (d > lo) & (d <= hi)
        if m.sum() == 0: continue
        fit = fit_walk_channel(rows0, table, val.edges[:, m], val.exclude_indptr, val.exclude_indices, weights=W, floors=F)
        total += fit["mrr@10"] * int(m.sum()); count += int(m.sum())
        print(f"{name} ({lo:.0f},{hi:.0f}] n={int(m.sum())}: lambda {fit['weight']} eps {fit['floor']} mrr {fit['mrr@10']:.4f}")
    print(name, "bucketed MRR (in-sample)", total / count, flush=True)
fit = fit_walk_channel(rows0, table, val.edges, val.exclude_indptr, val.exclude_indices, weights=W, floors=F)
print("global", fit["weight"], fit["floor"], fit["mrr@10"])
