"""Direction AUC and the global link metric of rank-normalised pair scores, f(u, v) = -log rank_u(v)
(the rank of v among every node but u by u's score: per-query ranking unchanged), beside the raw
scores, and the paired direction accuracy P(f(u, v) > f(v, u)). Validation edges only.

Run from the repository root after `blade ingest` and `blade train --set 'train.variants=[blade]'
--set train.use_tuned=false` on amazon0302 (seed 42):
    python docs/experiments/direction_rank.py outputs/train/blade/embeddings.pt 4000
(4,000 of the one-way validation edges, seeded). docs/decisions.md has what it printed.
"""
import sys
import time

import torch

from models.baselines import popularity_scores, walk_scores
from models.encoder import score as embedding_score
from models.graph import in_out_degrees
from models.pair_metrics import direction_auc, global_link_metrics
from models.training import validation_set
from models.walk_channel import WalkChannel, with_walk_channel
from pipeline.artifacts import load_split_graph

torch.set_num_threads(2)
graph = load_split_graph()
saved = torch.load(sys.argv[1], weights_only=True)
source, target, scale = saved["source"], saved["target"], saved["scale"]
channel = WalkChannel.from_dict(saved["walk_channel"])
validation = validation_set(graph, 5000, 42)
in_degree, _ = in_out_degrees(graph.train, graph.num_nodes)
pick = torch.randperm(validation.one_way.shape[1], generator=torch.Generator().manual_seed(0))
u1, v1 = validation.one_way[:, pick[:int(sys.argv[2])]]
(a, b), (c, d) = validation.edges, validation.non_edges


def embedding_rows(queries):
    return embedding_score(source[queries], target, scale)


methods = {"BLADE fused": with_walk_channel(embedding_rows, channel), "BLADE embeddings": embedding_rows,
           "popularity": popularity_scores(in_degree),
           "walk on A": walk_scores(graph.train, graph.num_nodes, (1.0, 3.0, 3.0), symmetric=False),
           "walk on A + A^T": walk_scores(graph.train, graph.num_nodes, (1.0, 3.0, 3.0), symmetric=True)}


def scores_and_ranks(rows, u, v, chunk=256):
    """Each pair's score and the mid-rank of v in u's row (u itself left out)."""
    raw, rank = [], []
    for start in range(0, u.numel(), chunk):
        q, t = u[start:start + chunk].long(), v[start:start + chunk].long()
        s = rows(q).double()
        s[torch.arange(q.numel()), q] = -float("inf")
        x = s[torch.arange(q.numel()), t]
        above, tied = (s > x[:, None]).sum(1), (s == x[:, None]).sum(1)
        raw.append(x)
        rank.append(1 + above + 0.5 * (tied - 1))
    return torch.cat(raw), torch.cat(rank).double()


for name, rows in methods.items():
    started = time.time()
    (P, Pr), (N, Nr) = scores_and_ranks(rows, u1, v1), scores_and_ranks(rows, v1, u1)
    (E, Er), (F, Fr) = scores_and_ranks(rows, a, b), scores_and_ranks(rows, c, d)
    for kind, p, n, e, f in (("raw", P, N, E, F), ("-log rank", -Pr.log(), -Nr.log(), -Er.log(), -Fr.log())):
        link = global_link_metrics(e, f)
        paired = ((p > n).double() + 0.5 * (p == n).double()).mean().item()
        print(f"{name:18s} {kind:9s} direction AUC {direction_auc(p, n):.4f} paired {paired:.4f} "
              f"global AUC {link['auc']:.4f} Hits@20 {link['hits@20']:.4f} @50 {link['hits@50']:.4f} "
              f"@100 {link['hits@100']:.4f} ({time.time() - started:.0f} s)", flush=True)
