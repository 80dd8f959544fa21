"""Greedy walk channels: which walk adds most to BLADE's score, then a second and third on top.

Run from the repository root after `blade ingest`, `blade degree-stats` and
`blade train --set 'train.variants=[blade]' --set train.use_tuned=false` on amazon0302 (seed 42):
    python docs/experiments/fusion_greedy.py
Validation edges only (training's 5,000-edge sample); docs/decisions.md has what it printed.
"""
import time

import torch
from fixed_walks import WALKS, WEIGHT_GRID

from models.baselines import item_knn_scores, walk_scores
from models.encoder import score as embedding_score
from models.graph import in_out_degrees
from models.pair_metrics import direction_auc, global_link_metrics
from models.training import validation_set
from models.walk_channel import WalkChannel, fit_walk_channel, pair_bonus, top_table, with_walk_channel
from pipeline.artifacts import load_split_graph

torch.set_num_threads(2)
graph = load_split_graph()
saved = torch.load("outputs/train/blade/embeddings.pt", weights_only=True)
S, T, scale = saved["source"], saved["target"], saved["scale"]
print("saved channel", {k: saved["walk_channel"][k] for k in ("weight", "floor")} if saved["walk_channel"] else None)
val = validation_set(graph, 5000, 42)
rows0 = lambda q: embedding_score(S[q], T, scale)
pairs0 = lambda u, v: scale * (S[u] * T[v]).sum(-1)
walks = dict(WALKS)
walks["item-kNN on A + A^T"] = lambda e, n: item_knn_scores(e, n, 100.0, True)
walks["item-kNN on A"] = lambda e, n: item_knn_scores(e, n, 100.0, False)
walks["walk on A^T"] = lambda e, n: walk_scores(e.flip(0), n, (1.0, 3.0, 3.0), symmetric=False)
tables = {}
for name, build in walks.items():
    t0 = time.time(); tables[name] = top_table(build(graph.train, graph.num_nodes), graph.num_nodes, 32)
    print(f"table {name}: {time.time()-t0:.1f}s", flush=True)
in_deg, _ = in_out_degrees(graph.train, graph.num_nodes)
def diagnostics(pairs):
    u, v = val.one_way
    d = direction_auc(pairs(u, v), pairs(v, u))
    (a, b), (c, e) = val.edges, val.non_edges
    g = global_link_metrics(pairs(a, b), pairs(c, e))
    return round(d, 4), round(g["auc"], 4), round(g["hits@50"], 4)
print("embeddings alone: dir/global", diagnostics(pairs0))
chosen, rows, pairs = [], rows0, pairs0
for round_ in range(3):
    results = {}
    for name, table in tables.items():
        if name in [c[0] for c in chosen]: continue
        t0 = time.time()
        fit = fit_walk_channel(rows, table, val.edges, val.exclude_indptr, val.exclude_indices, weights=WEIGHT_GRID)
        results[name] = fit
        ch = WalkChannel(table.index, table.value, fit["weight"], fit["floor"])
        p = lambda u, v, ch=ch: pairs(u, v) + pair_bonus(ch, u, v)
        print(f"round {round_} + {name}: lambda {fit['weight']} eps {fit['floor']} mrr {fit['mrr@10_without']:.4f} -> {fit['mrr@10']:.4f}  dir/global {diagnostics(p)} ({time.time()-t0:.1f}s)", flush=True)
    best = max(results, key=lambda n: results[n]["mrr@10"])
    fit = results[best]
    if fit["weight"] == 0 or fit["mrr@10"] < fit["mrr@10_without"] + 1e-4:
        break
    ch = WalkChannel(tables[best].index, tables[best].value, fit["weight"], fit["floor"])
    chosen.append((best, fit["weight"], fit["floor"], fit["mrr@10"]))
    rows = with_walk_channel(rows, ch)
    pairs = (lambda p0, c: (lambda u, v: p0(u, v) + pair_bonus(c, u, v)))(pairs, ch)
    print("CHOSEN", chosen, flush=True)
# popularity term on top
login = torch.log1p(in_deg.float())
for rho in (-1.0, -0.5, -0.25, 0.25, 0.5, 1.0, 2.0):
    r = lambda q, rho=rho: rows(q) + rho * login
    # MRR via fit with zero table
    empty = type(tables[chosen[0][0]])(tables[chosen[0][0]].index, torch.zeros_like(tables[chosen[0][0]].value))
    fit = fit_walk_channel(r, empty, val.edges, val.exclude_indptr, val.exclude_indices, weights=(0.0,), floors=(1.0,))
    p = lambda u, v, rho=rho: pairs(u, v) + rho * login[v]
    print(f"rho {rho}: mrr {fit['mrr@10']:.4f} dir/global {diagnostics(p)}", flush=True)
