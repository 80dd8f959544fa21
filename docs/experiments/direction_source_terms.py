"""Direction AUC and the global link metric with query-only terms (log in-degree, log out-degree, log-partition).

Run from the repository root after `blade ingest`, `blade degree-stats` and
`blade train --set 'train.variants=[blade]' --set train.use_tuned=false` on amazon0302 (seed 42):
    python docs/experiments/direction_source_terms.py
Validation edges only (training's 5,000-edge sample); docs/decisions.md has what it printed.
"""
import time

import torch

from models.encoder import score as embedding_score
from models.graph import in_out_degrees
from models.pair_metrics import direction_auc, global_link_metrics
from models.training import validation_set
from models.walk_channel import WalkChannel, pair_bonus, with_walk_channel
from pipeline.artifacts import load_split_graph

torch.set_num_threads(2)
graph = load_split_graph()
saved = torch.load("outputs/train/blade/embeddings.pt", weights_only=True)
S, T, scale = saved["source"], saved["target"], saved["scale"]
ch = WalkChannel.from_dict(saved["walk_channel"])
val = validation_set(graph, 5000, 42)
rows = with_walk_channel(lambda q: embedding_score(S[q], T, scale), ch)
pairs = lambda u, v: scale * (S[u] * T[v]).sum(-1) + pair_bonus(ch, u, v)
ind, outd = in_out_degrees(graph.train, graph.num_nodes)
lin, lout = torch.log1p(ind.float()), torch.log1p(outd.float())
u1, v1 = val.one_way; (a, b), (c, d) = val.edges, val.non_edges
nodes = torch.unique(torch.cat([u1, v1, a, c]))
logz = torch.zeros(graph.num_nodes)
t0 = time.time()
if True:
  for i in range(0, nodes.numel(), 512):
    q = nodes[i:i+512]; logz[q] = torch.logsumexp(rows(q), dim=1)
print("logZ", time.time()-t0)
P1, N1, PE, NE = pairs(u1, v1), pairs(v1, u1), pairs(a, b), pairs(c, d)
feats = {"lin": lin, "lout": lout, "logz": logz}
def ev(w):
    g = sum((w[k] * feats[k] for k in w), torch.zeros(graph.num_nodes))
    dd = direction_auc(P1 + g[u1], N1 + g[v1]); gl = global_link_metrics(PE + g[a], NE + g[c])
    return round(dd, 4), round(gl["auc"], 4), round(gl["hits@50"], 4), round(gl.get("hits@20", 0), 4)
print("none", ev({}))
print("-logz", ev({"logz": -1.0}))
for wl in (-8, -4, -2, -1, 0):
    for wo in (0, 1, 2, 4, 8):
        for wz in (0, -0.5, -1):
            print(f"lin {wl} lout {wo} logz {wz}", ev({"lin": wl, "lout": wo, "logz": wz}))
