"""Reciprocal-rank fusion of a saved model's embeddings and a walk (Cormack et al., SIGIR 2009),
against the shipped score fusion (the walk channel): s(q, x) = 1 / (k + rank_emb(q, x)) +
w / (k + rank_walk(q, x)), ranks among q's filtered candidates (not q, not its training
out-neighbours), so the two lists fuse by position, not by the size of their scores.
Validation MRR@10, overall and on the two kinds of edge. Validation edges only.

Only the target and each list's top ``DEPTH`` candidates are fused: a candidate outside both
tops has a fused score below (1 + w) / (k + DEPTH), under any of the top 10 fused candidates for
the grid here, so the target's fused rank is exact where MRR@10 counts it.

Run from the repository root after `dvc repro train` (amazon0302, seed 42):
    python docs/experiments/rank_fusion.py outputs/train/blade/embeddings.pt
docs/decisions.md has what it printed.
"""
import sys
import time

import torch

from models.baselines import walk_scores
from models.evaluation import saved_scorers
from models.graph import reverse_exists
from models.training import validation_set
from pipeline.artifacts import load_split_graph

DEPTH = 200
KS = (1.0, 10.0, 60.0)
WEIGHTS = (0.5, 1.0, 1.5, 2.0, 3.0, 5.0)

torch.set_num_threads(2)
graph = load_split_graph()
n = graph.num_nodes
saved = torch.load(sys.argv[1], weights_only=True)
embeddings = saved_scorers(dict(saved, walk_channel=None))[0]
walk = walk_scores(graph.train, n, (1.0, 3.0, 3.0), symmetric=True)
val = validation_set(graph, 5000, 42)
reverse = reverse_exists(val.edges, graph.train, n)


def filtered(scores, queries):
    scores = scores.clone()
    for i, q in enumerate(queries.tolist()):
        scores[i, val.exclude_indices[val.exclude_indptr[q]:val.exclude_indptr[q + 1]]] = -float("inf")
        scores[i, q] = -float("inf")
    return scores


def ranks_of(scores, ids):
    """1-based mid-ranks (ties share the mean rank) of the columns ``ids [B, m]`` in each row."""
    ordered = scores.sort(dim=1).values  # ascending
    values = scores.gather(1, ids).contiguous()
    above = scores.shape[1] - torch.searchsorted(ordered, values, right=True)
    tied = torch.searchsorted(ordered, values, right=True) - torch.searchsorted(ordered, values)
    return 1 + above.double() + 0.5 * (tied.double() - 1)


started = time.time()
grid = {(k, w): [] for k in KS for w in WEIGHTS}
alone = {"embeddings": [], "walk": []}
queries, targets = val.edges[0].long(), val.edges[1].long()
for start in range(0, queries.numel(), 128):
    q, v = queries[start:start + 128], targets[start:start + 128]
    score_e, score_w = filtered(embeddings(q), q), filtered(walk(q), q)
    # the target first, then each list's top DEPTH; later copies of a node are masked
    top = torch.cat([v[:, None], score_e.topk(DEPTH, 1).indices, score_w.topk(DEPTH, 1).indices], 1)
    rank_e, rank_w = ranks_of(score_e, top), ranks_of(score_w, top)
    alone["embeddings"].append(rank_e[:, 0])
    alone["walk"].append(rank_w[:, 0])
    duplicate = torch.zeros_like(top, dtype=torch.bool)
    for j in range(1, top.shape[1]):
        duplicate[:, j] = (top[:, :j] == top[:, j:j + 1]).any(1)
    for (k, w), out in grid.items():
        fused = 1.0 / (k + rank_e) + w / (k + rank_w)
        fused[duplicate] = -1.0
        others, target = fused[:, 1:], fused[:, :1]
        out.append(1 + (others > target).sum(1).double() + 0.5 * (others == target).sum(1).double())


def mrr(ranks, mask):
    ranks = ranks[mask]
    return torch.where(ranks <= 10, 1.0 / ranks, torch.zeros_like(ranks)).mean().item()


subsets = {"all": torch.ones_like(reverse), "reverse": reverse, "one-way": ~reverse}
for name, ranks in alone.items():
    ranks = torch.cat(ranks)
    print(f"{name} alone: " + " / ".join(f"{mrr(ranks, m):.4f}" for m in subsets.values()))
results = sorted(((mrr(torch.cat(r), subsets["all"]), k, w) for (k, w), r in grid.items()), reverse=True)
for _value, k, w in results[:6]:
    ranks = torch.cat(grid[(k, w)])
    print(f"k {k:g} w {w:g}: " + " / ".join(f"{mrr(ranks, m):.4f}" for m in subsets.values()))
print(f"({time.time() - started:.0f} s)")
