"""How much of the one-way edges' loss is the reverse candidates crowding them out? Validation
edges only; no test edge is scored.

The walk channel lifts a query's open in-neighbours (x -> q in training, q -> x not: the
candidates of the "reverse in training" kind) towards the top of its list, which is why it wins
on the edges whose reverse is in training and costs the one-way edges. This measures the size of
that trade with a saved model's fused score, as three rankings of the validation edges:

- shipped: the fused score as served;
- without open in-neighbours: every open in-neighbour of the query left out of its list, so a
  one-way target competes only with the other candidates (reverse-kind targets are then lost);
- oracle: each edge takes the better of the two, as a router that knew the edge's kind would.
  This bounds what any rule that moves a query's open in-neighbours as one block can gain;
- only the best 1, 2 or 3 open in-neighbours (by the fused score) kept, the rest left out;
- every open in-neighbour's fused score lowered (or raised) by a constant;
- a router: a logistic model of the query's features (open in-neighbours, degrees, the score gap
  between its best open in-neighbour and its best other candidate) picks, per query, the
  shipped list or the list without open in-neighbours (2-fold cross-fit on the edges).

Run from the repository root after `dvc repro train` (amazon0302, seed 42):
    python docs/experiments/reverse_crowding.py outputs/train/blade/embeddings.pt
docs/decisions.md has what it printed.
"""
import sys

import torch

from models.evaluation import saved_scorers
from models.graph import in_out_degrees, reverse_exists
from models.metrics import filtered_ranks, out_neighbour_csr, ranking_metrics
from models.pair_metrics import direction_auc
from models.sparse import csr_row_slots
from models.training import validation_set
from models.walk_channel import _exclude
from pipeline.artifacts import load_split_graph

torch.set_num_threads(2)
graph = load_split_graph()
n = graph.num_nodes
shipped = saved_scorers(torch.load(sys.argv[1], weights_only=True))[0]
val = validation_set(graph, 5000, 42)
reverse = reverse_exists(val.edges, graph.train, n)

# open in-neighbours as CSR over the query: x with x -> q in training and not q -> x
opened = ~reverse_exists(graph.train, graph.train, n)
indptr, candidate = out_neighbour_csr(graph.train[:, opened].flip(0), n)
open_count = indptr[1:] - indptr[:-1]


def open_in_neighbours(queries):
    """``(row, column)`` of every open in-neighbour of each query of the batch."""
    row, slot = csr_row_slots(indptr, queries)
    return row, candidate[slot]


def lowered_open_in_neighbours(queries, penalty):
    """The fused rows with each query's open in-neighbours lowered by ``penalty``."""
    scores = shipped(queries)
    row, col = open_in_neighbours(queries)
    scores[row, col] -= penalty
    return scores


def without_open_in_neighbours(queries, keep=0, scores=None):
    """The fused rows (``scores``, or computed) with each query's open in-neighbours left out,
    but its ``keep`` best."""
    scores = shipped(queries) if scores is None else scores.clone()
    row, col = open_in_neighbours(queries)
    if keep:
        value = scores[row, col]
        order = torch.argsort(-value, stable=True)
        row, col = row[order], col[order]
        order = torch.argsort(row, stable=True)  # by query, the best first
        row, col = row[order], col[order]
        first = torch.searchsorted(row, torch.arange(queries.numel()))
        drop = torch.arange(row.numel()) - first[row] >= keep
        row, col = row[drop], col[drop]
    scores[row, col] = float("-inf")
    return scores


def ranks(score_fn):
    return filtered_ranks(score_fn, val.edges[0], val.edges[1], val.exclude_indptr,
                          val.exclude_indices, n)


has_open = open_count[val.edges[0]] > 0
SUBSETS = (torch.ones_like(reverse), reverse, ~reverse, ~reverse & has_open)


def report(name, ranks_of_edges):
    cells = [ranking_metrics(ranks_of_edges[mask], (10,))["mrr@10"] for mask in SUBSETS]
    print(f"{name} | " + " / ".join(f"{c:.4f}" for c in cells)
          + f" | {ranking_metrics(ranks_of_edges, (10,))['hit_rate@10']:.4f}", flush=True)


print(f"{val.edges.shape[1]} validation edges: {reverse.float().mean():.3f} reverse in training; "
      f"{has_open.float().mean():.3f} have a query with an open in-neighbour "
      f"({has_open[~reverse].float().mean():.3f} of the one-way edges)")
print("ranking | MRR@10 all / reverse in training / one-way / one-way with an open in-neighbour | HR@10 all")
shipped_ranks = ranks(shipped)
pruned_ranks = ranks(without_open_in_neighbours)
rankings = {"shipped": shipped_ranks, "without open in-neighbours": pruned_ranks,
            "oracle: the better of the two per edge": torch.minimum(shipped_ranks, pruned_ranks)}
for keep in (1, 2, 3):
    rankings[f"only the {keep} best open in-neighbours kept"] = ranks(
        lambda queries, keep=keep: without_open_in_neighbours(queries, keep))
for penalty in (-1.0, 0.5, 1.0, 2.0, 4.0, 8.0):
    rankings[f"open in-neighbours lowered by {penalty:g}"] = ranks(
        lambda queries, penalty=penalty: lowered_open_in_neighbours(queries, penalty))
for name, r in rankings.items():
    report(name, r)

# A router from what is known of the query: leave its open in-neighbours out when a logistic
# model of the query's features says its held-out edge is unlikely to be of the reverse kind.
# Features: log(1 + open in-neighbours), log(1 + d_out), log(1 + d_in) of the query, and the gap
# between the fused score of its best open in-neighbour and of its best other candidate.
in_degree, out_degree = in_out_degrees(graph.train, n)
queries = val.edges[0]
gap = torch.zeros(queries.numel())
for start in range(0, queries.numel(), 512):
    batch = queries[start:start + 512]
    full = shipped(batch)
    _exclude(full, batch, batch, val.exclude_indptr, val.exclude_indices)
    pruned = without_open_in_neighbours(batch, scores=full)
    best_open = torch.where(full > pruned, full, torch.tensor(float("-inf"))).max(dim=1).values
    gap[start:start + 512] = (best_open - pruned.max(dim=1).values).clamp(-50, 50)
features = torch.stack([torch.log1p(open_count[queries].float()),
                        torch.log1p(out_degree[queries].float()), torch.log1p(in_degree[queries].float()),
                        gap], dim=1)
features = (features - features.mean(0)) / features.std(0).clamp(min=1e-6)
label = reverse.float()


def logistic(x, y, steps=500):
    weight = torch.zeros(x.shape[1] + 1, requires_grad=True)
    optimiser = torch.optim.LBFGS([weight], max_iter=steps)
    design = torch.cat([x, torch.ones(x.shape[0], 1)], dim=1)

    def closure():
        optimiser.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(design @ weight, y)
        loss.backward()
        return loss

    optimiser.step(closure)
    return lambda z: torch.sigmoid(torch.cat([z, torch.ones(z.shape[0], 1)], dim=1) @ weight).detach()


order = torch.randperm(queries.numel(), generator=torch.Generator().manual_seed(0))
folds = (order[: order.numel() // 2], order[order.numel() // 2:])
routed = shipped_ranks.clone()
probability = torch.zeros(queries.numel())
for k in (0, 1):
    fit, held = folds[k], folds[1 - k]
    predict = logistic(features[fit], label[fit])
    best = (-1.0, 1.0)
    for threshold in torch.linspace(0, 1, 101).tolist():
        take = predict(features[fit]) < threshold
        r = torch.where(take, pruned_ranks[fit], shipped_ranks[fit])
        best = max(best, (ranking_metrics(r, (10,))["mrr@10"], -threshold))
    probability[held] = predict(features[held])
    take = probability[held] < -best[1]
    routed[held] = torch.where(take, pruned_ranks[held], shipped_ranks[held])
    print(f"fold {k}: threshold {-best[1]:.2f}, in-sample MRR@10 {best[0]:.4f}, "
          f"{take.float().mean():.3f} of the other half's queries routed", flush=True)
tells = direction_auc(probability[reverse], probability[~reverse])
among = direction_auc(probability[reverse & has_open], probability[~reverse & has_open])
print(f"how well the features tell the kind (AUC, held-out halves): {tells:.4f}; "
      f"among queries with an open in-neighbour {among:.4f}")
report("router, 2-fold cross-fit", routed)
