"""A non-linear reranker over candidate features, against the shipped walk channel (2-fold cross-fit).

Candidates of each validation query q: the 64 best by the embedding score and the 32 of each walk
table (five tables, as in fusion_learned.py). A candidate's features: its embedding score (and
its gap to the query's best over every other node), log-degrees, log(1 + W / eps) of each table
at two epsilons, whether it points at q in training (the reverse edge), and the query's own
log-degrees and reciprocation rate (the share of q's training out-edges whose reverse is also a
training edge), so the model can weigh the walk differently for queries that reciprocate. A
held-out edge q -> v that no candidate list reaches counts as a miss for every row. Scorers,
each fitted on one half of the validation edges and scored on the other:
  - the shipped channel (embedding + lambda log(1 + W/eps), grid as models/walk_channel.py),
  - a linear listwise model on all features,
  - the same with each candidate feature also multiplied by each query feature,
  - an MLP (two hidden layers) on all features, weight decay.
The learned ones use a listwise softmax and stop early on a fifth of their fitting half.

Run from the repository root after `blade ingest`, `blade degree-stats` and `blade train`:
    python docs/experiments/fusion_mlp.py [EMBEDDINGS.pt [GROUP ...]]
GROUP: linear, all, few, few-parts, few-small, few-sparse, few-sparse-ensemble (default: all).
"few-small": candidates only from the embeddings, the walk on A + A^T and its first step (what a
shipped model carries); "few-sparse": a model that can score every node at the cost of a table
(SparseReranker); "few-sparse-ensemble": the mean of five of them.
Validation edges only (training's 5,000-edge sample); docs/decisions.md has what it printed.
"""
import sys
import time

import torch

from models.baselines import item_knn_scores, rp3beta_scores, walk_scores
from models.encoder import score as embedding_score
from models.graph import in_out_degrees, reverse_exists
from models.training import validation_set
from models.walk_channel import FLOOR_GRID, _exclude, _later_duplicates, top_table
from pipeline.artifacts import load_split_graph

WEIGHT_GRID = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)  # the channel's grid until 2026-12-07

torch.set_num_threads(1)
torch.manual_seed(0)
path = sys.argv[1] if len(sys.argv) > 1 else "outputs/train/blade/embeddings.pt"
graph = load_split_graph()
saved = torch.load(path, weights_only=True)
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
print(f"tables {time.time() - t0:.0f}s", flush=True)
in_deg, out_deg = in_out_degrees(E, N)
log_in, log_out = torch.log1p(in_deg.float()), torch.log1p(out_deg.float())
reciprocated = reverse_exists(E, E, N).float()
reciprocation = torch.zeros(N).index_add_(0, E[0], reciprocated) / out_deg.clamp(min=1).float()
points_at = set(zip(E[0].tolist(), E[1].tolist()))

q_all, v_all = val.edges[0].long(), val.edges[1].long()
SMALL = 64 + 32 + 32  # candidates from the embeddings, the walk on A + A^T and its first step
feats, masks, reached, reached_small, walk_raw = [], [], [], [], []
for start in range(0, q_all.numel(), 250):
    q, v = q_all[start:start + 250], v_all[start:start + 250]
    rows = torch.arange(q.numel())
    sc = embedding_score(S[q], T, scale)
    target_score = sc[rows, v].clone()
    sc[rows, q] = float("-inf")
    # the query's best score over every other node, the target and training neighbours included:
    # a number of q alone, as a pair score needs (the first version left the target out, which
    # told the model where the target was whenever it was the embeddings' first)
    query_best = sc.max(1, keepdim=True).values
    _exclude(sc, q, v, val.exclude_indptr, val.exclude_indices)
    sc[rows, v] = float("-inf")
    best, top = torch.topk(sc, 64, dim=1)
    retrieved = torch.cat([top] + [t.index[q] for t in tables.values()], dim=1)
    in_top = target_score >= best[:, -1]  # v is among the embeddings' 64 best
    reached.append(in_top | (retrieved == v.unsqueeze(1)).any(1))
    reached_small.append(in_top | (retrieved[:, :SMALL] == v.unsqueeze(1)).any(1))
    ids = torch.cat([v.reshape(-1, 1), retrieved], dim=1)
    e = sc.gather(1, ids)
    e[:, 0] = target_score
    valid = torch.isfinite(e) & ~_later_duplicates(ids)
    valid[:, 0] = True
    e = torch.where(valid, e, torch.zeros(()))
    cols = [e, e - query_best, log_in[ids], log_out[ids]]
    for name, t in tables.items():
        value = (t.index[q].unsqueeze(1) == ids.unsqueeze(2)).float().mul(t.value[q].unsqueeze(1)).sum(2)
        if name == "sym133":
            walk_raw.append(value)
        if name == "hop1":
            cols.append((value > 0).float())
        else:
            cols += [torch.log1p(value / 1e-2), torch.log1p(value / 1.0)]
    cols.append(torch.tensor([[float((int(x), int(u)) in points_at) for x in row] for row, u in zip(ids, q)]))
    cols += [x[q].unsqueeze(1).expand_as(e) for x in (log_in, log_out, reciprocation)]
    feats.append(torch.stack(cols, dim=2))
    masks.append(valid)
X, M, R, W = torch.cat(feats), torch.cat(masks), torch.cat(reached), torch.cat(walk_raw)
print(f"features {tuple(X.shape)}, v retrieved for {R.float().mean():.3f} of queries, "
      f"{time.time() - t0:.0f}s", flush=True)
mean, std = X[M].mean(0), X[M].std(0).clamp(min=1e-6)
Xn = (X - mean) / std


def reciprocal_rank(scores: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    s = scores.masked_fill(~M[idx], float("-inf"))
    rank = 1 + (s[:, 1:] > s[:, :1]).sum(1)
    return torch.where((rank <= 10) & R[idx], 1.0 / rank, torch.zeros(()))


def channel(idx: torch.Tensor, weight: float, floor: float) -> torch.Tensor:
    return X[idx, :, 0] + weight * torch.log1p(W[idx] / floor)


def fit_channel(idx: torch.Tensor) -> tuple[float, float]:
    return max(((w, f) for w in WEIGHT_GRID for f in FLOOR_GRID),
               key=lambda wf: float(reciprocal_rank(channel(idx, *wf), idx).mean()))


def fit_listwise(model: torch.nn.Module, idx: torch.Tensor, inputs: torch.Tensor, steps: int,
                 decay: float) -> torch.nn.Module:
    """Adam on the listwise softmax over 80% of ``idx``; keeps the parameters of the step (checked
    every 10) with the best MRR@10 on the other 20%: early stopping inside the fitting half."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=decay)
    shuffled = idx[torch.randperm(idx.numel())]
    inner, stop_on = shuffled[: idx.numel() * 4 // 5], shuffled[idx.numel() * 4 // 5:]
    fit_idx = inner[R[inner]]  # only queries whose target retrieval reaches
    best, best_state = -1.0, None
    for step in range(steps + 1):
        if step % 10 == 0:
            with torch.no_grad():
                now = float(reciprocal_rank(model(inputs[stop_on]).squeeze(-1), stop_on).mean())
            if now > best:
                best, best_state = now, {k: v.clone() for k, v in model.state_dict().items()}
        opt.zero_grad()
        s = model(inputs[fit_idx]).squeeze(-1).masked_fill(~M[fit_idx], float("-inf"))
        loss = -torch.log_softmax(s, 1)[:, 0].mean()
        loss.backward()
        opt.step()
    model.load_state_dict(best_state)
    return model


class SparseReranker(torch.nn.Module):
    """What a table-sized model can score cheaply at every node: ``a e + h(x's degrees)`` for
    every candidate, plus ``g(features)`` only where x is in q's walk or one-step table."""

    def __init__(self, columns: list[int], width: int) -> None:
        super().__init__()
        self.columns = columns
        self.a = torch.nn.Parameter(torch.tensor(1.0))
        self.h = mlp(2, 8)
        self.g = mlp(len(columns), width)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        idx = idx.flatten()
        in_table = ((X[idx, :, 4] > 0) | (X[idx, :, 6] > 0)).float()
        return (self.a * Xn[idx, :, 0] + self.h(Xn[idx][..., [2, 3]]).squeeze(-1)
                + in_table * self.g(Xn[idx][..., self.columns]).squeeze(-1)).unsqueeze(-1)


def mlp(inputs: int, width: int) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(inputs, width), torch.nn.ReLU(),
                               torch.nn.Linear(width, width), torch.nn.ReLU(), torch.nn.Linear(width, 1))


# Candidate features times (1, the query's three features): a linear model whose weights depend
# linearly on the query, the least capacity that lets query features matter to a ranking.
QUERY = slice(X.shape[2] - 3, X.shape[2])
Xq = torch.cat([Xn[..., : QUERY.start]] + [Xn[..., : QUERY.start] * Xn[..., k: k + 1]
                                           for k in range(QUERY.start, X.shape[2])], dim=2)


half = torch.arange(X.shape[0]) % 2 == 0
folds = (half.nonzero().flatten(), (~half).nonzero().flatten())


def cross_fit(name: str, scorer) -> None:
    rr = torch.zeros(X.shape[0])
    for fit_on, score_on in (folds, folds[::-1]):
        rr[score_on] = reciprocal_rank(scorer(fit_on, score_on), score_on)
    print(f"{name}: cross-fit MRR@10 {rr.mean():.4f} / reverse {rr[rev].mean():.4f} / "
          f"one-way {rr[~rev].mean():.4f}", flush=True)


cross_fit("embeddings alone", lambda fit_on, idx: X[idx, :, 0])
cross_fit("shipped channel (lambda, eps on the other half)",
          lambda fit_on, idx: channel(idx, *fit_channel(fit_on)))
def learned(make_model, inputs: torch.Tensor, decay: float):
    """A scorer for cross_fit: fit ``make_model()`` on one half, score the other."""
    def scorer(fit_on: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        model = fit_listwise(make_model(), fit_on, inputs, 300, decay)
        return model(inputs[idx]).squeeze(-1).detach()
    return scorer


# "few": what the shipped channel's table and the degrees give: embedding score and its gap to
# the query's best (0, 1), candidate log in- and out-degree (2, 3), the walk on A + A^T at two
# epsilons (4, 5), its first step, the reverse edge (6), the query's log-degrees and
# reciprocation rate (14, 15, 16). "few-parts" leaves out one kind at a time.
FEATURE_SETS = {"all": list(range(X.shape[2])), "few": [0, 1, 2, 3, 4, 5, 6, 14, 15, 16],
                "few without query features": [0, 1, 2, 3, 4, 5, 6],
                "few without candidate degrees": [0, 1, 4, 5, 6, 14, 15, 16],
                "few without the reverse-edge flag": [0, 1, 2, 3, 4, 5, 14, 15, 16]}
CONFIGS = {"all": [("all", 16, 1e-4), ("all", 32, 1e-3), ("all", 64, 1e-3), ("all", 32, 1e-2)],
           "few": [("few", 32, 1e-3)],
           "few-parts": [(name, 32, 1e-3) for name in FEATURE_SETS if name.startswith("few without")],
           "few-small": [("few", 32, 1e-3)]}
GROUPS = sys.argv[2:] or ["linear", "all", "few", "few-parts", "few-small", "few-sparse",
                          "few-sparse-ensemble"]
POSITIONS = torch.arange(X.shape[0]).reshape(-1, 1)  # a SparseReranker's input: rows of X
ALL_CANDIDATES = M, R
# "few-small" and "few-sparse": candidates only from the tables a shipped model would carry
SMALL_CANDIDATES = M.clone(), torch.cat(reached_small)
SMALL_CANDIDATES[0][:, 1 + SMALL:] = False


for group in GROUPS:
    M, R = SMALL_CANDIDATES if group.startswith(("few-small", "few-sparse")) else ALL_CANDIDATES
    if group == "linear":
        for name, inputs in (("linear listwise", Xn), ("linear with query interactions", Xq)):
            torch.manual_seed(0)
            linear = learned(lambda n=inputs.shape[2]: torch.nn.Linear(n, 1), inputs, 0.0)
            cross_fit(name + ", early-stopped", linear)
    if group == "few-small":
        cross_fit("shipped channel, small candidate set",
                  lambda fit_on, idx: channel(idx, *fit_channel(fit_on)))
    if group == "few-sparse":
        for seed in (0, 1, 2):
            torch.manual_seed(seed)
            cross_fit(f"sparse reranker on few features, seed {seed}",
                      learned(lambda: SparseReranker(FEATURE_SETS["few"], 32), POSITIONS, 1e-3))
    if group == "few-sparse-ensemble":  # the mean score of 5 seeds: still one table-sized model

        def ensemble(fit_on: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
            scores = []
            for seed in range(5):
                torch.manual_seed(seed)
                model = fit_listwise(SparseReranker(FEATURE_SETS["few"], 32), fit_on, POSITIONS, 300, 1e-3)
                scores.append(model(POSITIONS[idx]).squeeze(-1).detach())
            return torch.stack(scores).mean(0)
        cross_fit("sparse reranker on few features, mean of seeds 0-4", ensemble)
    for features, width, decay in CONFIGS.get(group, []):
        inputs = Xn[..., FEATURE_SETS[features]]
        for seed in (0, 1, 2):
            torch.manual_seed(seed)
            cross_fit(f"MLP on {features} features, width {width}, decay {decay}, seed {seed}, early-stopped",
                      learned(lambda n=inputs.shape[2], w=width: mlp(n, w), inputs, decay))
print(f"total {time.time() - t0:.0f}s")
