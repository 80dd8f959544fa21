"""A learned linear fusion of the embedding score, popularity and walk features (listwise softmax, 2-fold cross-fit).

Run from the repository root after `blade ingest`, `blade degree-stats` and
`blade train --set 'train.variants=[blade]' --set train.use_tuned=false` on amazon0302 (seed 42):
    python docs/experiments/fusion_learned.py
Validation edges only (training's 5,000-edge sample); docs/decisions.md has what it printed.
"""
import time

import torch

from models.baselines import item_knn_scores, rp3beta_scores, walk_scores
from models.encoder import score as embedding_score
from models.graph import in_out_degrees, reverse_exists
from models.training import validation_set
from models.walk_channel import _exclude, _later_duplicates, top_table
from pipeline.artifacts import load_split_graph

torch.set_num_threads(2)
graph = load_split_graph()
saved = torch.load("outputs/train/blade/embeddings.pt", weights_only=True)
S, T, scale = saved["source"], saved["target"], saved["scale"]
val = validation_set(graph, 5000, 42)
rev = reverse_exists(val.edges, graph.train, graph.num_nodes)
E, N = graph.train, graph.num_nodes
t0 = time.time()
tables = {
  "sym133": top_table(walk_scores(E, N, (1, 3, 3), True), N, 32),
  "hop1": top_table(walk_scores(E, N, (1, 0, 0), True), N, 32),
  "knn": top_table(item_knn_scores(E, N, 100.0), N, 32),
  "dir133": top_table(walk_scores(E, N, (1, 3, 3), False), N, 32),
  "rp3sym": top_table(rp3beta_scores(E, N, 0.5, 0.0, True), N, 32),
}
print("tables", time.time() - t0, flush=True)
ind, _ = in_out_degrees(E, N); lin = torch.log1p(ind.float())
q_all, v_all = val.edges[0].long(), val.edges[1].long()
feats, masks = [], []
for start in range(0, q_all.numel(), 250):
    q, v = q_all[start:start+250], v_all[start:start+250]
    sc = embedding_score(S[q], T, scale)
    tgt = sc[torch.arange(q.numel()), v].clone()
    _exclude(sc, q, v, val.exclude_indptr, val.exclude_indices)
    sc[torch.arange(q.numel()), v] = float("-inf")
    _, top = torch.topk(sc, 64, dim=1)
    ids = torch.cat([v.reshape(-1, 1), top] + [t.index[q] for t in tables.values()], dim=1)
    e = sc.gather(1, ids); e[:, 0] = tgt
    valid = torch.isfinite(e) & ~_later_duplicates(ids)
    valid[:, 0] = True
    e = torch.where(valid, e, torch.zeros(()))
    cols = [e, lin[ids]]
    for name, t in tables.items():
        match = (t.index[q].unsqueeze(1) == ids.unsqueeze(2))  # [B, M, 32]
        val_ = (match * t.value[q].unsqueeze(1)).sum(2)
        if name == "hop1":
            cols.append((val_ > 0).float())
        else:
            cols += [torch.log1p(val_ / 1e-2), torch.log1p(val_ / 1.0)]
    feats.append(torch.stack(cols, dim=2)); masks.append(valid)
X = torch.cat(feats); M = torch.cat(masks)
names = ["emb", "pop"] + [n for name in tables for n in ([name] if name == "hop1" else [name + "@.01", name + "@1"])]
print("features", X.shape, time.time() - t0, flush=True)
def mrr(w, idx):
    s = (X[idx] * w).sum(2).masked_fill(~M[idx], float("-inf"))
    rank = 1 + (s[:, 1:] > s[:, :1]).sum(1)
    rr = torch.where(rank <= 10, 1.0 / rank, torch.zeros(()))
    return rr
def fit(idx, use):
    w = torch.zeros(X.shape[2]); w[0] = 1.0
    w = w.clone().requires_grad_(True)
    mask_use = torch.tensor([n in use for n in names], dtype=torch.float32)
    opt = torch.optim.LBFGS([w], max_iter=200, line_search_fn="strong_wolfe")
    Xi, Mi = X[idx], M[idx]
    def closure():
        opt.zero_grad()
        s = (Xi * (w * mask_use)).sum(2).masked_fill(~Mi, float("-inf"))
        loss = -torch.log_softmax(s, 1)[:, 0].mean()
        loss.backward(); return loss
    opt.step(closure)
    return (w * mask_use).detach()
half = torch.arange(X.shape[0]) % 2 == 0
A, B = half.nonzero().flatten(), (~half).nonzero().flatten()
revA, revB = rev[A], rev[B]
base = torch.zeros(X.shape[2]); base[0] = 1
print("emb only", float(mrr(base, A).mean()), float(mrr(base, B).mean()))
for use in [["emb", "sym133@.01", "sym133@1"], ["emb", "pop", "sym133@.01", "sym133@1"],
            ["emb", "pop", "sym133@.01", "sym133@1", "hop1"],
            ["emb", "pop", "sym133@.01", "sym133@1", "hop1", "knn@.01", "knn@1"],
            ["emb", "pop", "sym133@.01", "sym133@1", "hop1", "knn@.01", "knn@1", "dir133@.01", "dir133@1"],
            names]:
    wA = fit(A, use); wB = fit(B, use)
    rB, rA = mrr(wA, B), mrr(wB, A)  # cross-fitted
    allr = torch.cat([rA, rB]); allrev = torch.cat([revA, revB])
    print(f"{'+'.join(use)}: cross-fit MRR {allr.mean():.4f} rev {allr[allrev].mean():.4f} oth {allr[~allrev].mean():.4f}; "
          f"in-sample {mrr(wA, A).mean():.4f}", flush=True)
    print("   w", {n: round(float(x), 3) for n, x in zip(names, wA) if x != 0})
