"""Scores made comparable across queries by each query's own score distribution. Validation
edges only; no test edge is scored.

Direction AUC and the global link metric compare pairs of different queries, so they depend on
how each query's scores are placed against the others'. The shipped calibration moves a query's
scores by delta * log(1 + d_in(q)); here each query's scores are instead put on a common scale
by a transform that is strictly increasing per query, so no query's ranking changes:

    z(q, x)    = (s(q, x) - mean_R s(q, .)) / std_R s(q, .)    R: 2,048 uniform reference nodes
    rank(q, x) = -log(1 + #{y : s(q, y) > s(q, x)})               over every node y

z needs two numbers per node (a served score stays one dot product and an affine map); rank
needs the query's whole row and is the reference for what a per-query transform can reach.
Each form is scored as it is and with the shipped delta fitted on top (models.direction's grid
and global check), 2-fold cross-fit on the one-way validation edges as in
direction_saturation.py. Every baseline gets the same transforms and fits.

Run from the repository root after `dvc repro train` (amazon0302, seed 42):
    python docs/experiments/direction_per_query.py outputs/train/blade/embeddings.pt
docs/decisions.md has what it printed.
"""
import json
import sys
import time

import torch

from models.baselines import cooccurrence_scores, popularity_scores
from models.direction import fit_source_prior
from models.evaluation import saved_scorers
from models.graph import in_out_degrees
from models.pair_metrics import direction_auc, global_link_metrics
from models.training import validation_set
from pipeline.artifacts import load_split_graph
from pipeline.evaluate import baseline_candidates
from pipeline.report_stats import LABELS
from pipeline.settings import BaselineSettings

torch.set_num_threads(2)
graph = load_split_graph()
saved = torch.load(sys.argv[1], weights_only=True)
settings = json.load(open("metrics/evaluate.json"))["methods"]
validation = validation_set(graph, 5000, 42)
n = graph.num_nodes
in_degree, _ = in_out_degrees(graph.train, n)
log_in = torch.log1p(in_degree.double())
u1, v1 = validation.one_way
(a, b), (c, d) = validation.edges, validation.non_edges
reference = torch.randperm(n, generator=torch.Generator().manual_seed(0))[:2048]
print(f"{u1.numel()} one-way validation edges, {a.numel()} edges, {c.numel()} non-edges, "
      f"{reference.numel()} reference nodes", flush=True)


methods = {"BLADE": lambda: saved_scorers(saved)[0], "popularity": lambda: popularity_scores(in_degree),
           "co-occurrence": lambda: cooccurrence_scores(graph.train, n)}
for key, (build, _) in baseline_candidates(graph, BaselineSettings()).items():
    methods[LABELS[key]] = lambda build=build, key=key: build(**settings[key]["settings"]["chosen"])


def transformed(rows, u, v, batch=512):
    """``{form: [P] scores}`` of the pairs u -> v under each per-query transform."""
    out = {form: torch.empty(u.numel(), dtype=torch.float64) for form in ("raw", "z", "rank")}
    for start in range(0, u.numel(), batch):
        block = rows(u[start:start + batch].long()).double()
        score = block[torch.arange(block.shape[0]), v[start:start + batch].long()]
        ref = block[:, reference]
        spread = ref.std(dim=1).clamp(min=1e-12)
        out["raw"][start:start + batch] = score
        out["z"][start:start + batch] = (score - ref.mean(dim=1)) / spread
        out["rank"][start:start + batch] = -torch.log1p((block > score[:, None]).sum(dim=1).double())
    return out


generator = torch.Generator().manual_seed(0)
halves = []
for count in (u1.numel(), a.numel(), c.numel()):
    order = torch.randperm(count, generator=generator)
    halves.append((order[: count // 2], order[count // 2:]))


def cross_fit(forward, backward, edges, non_edges):
    """Direction AUC and global metrics of the delta fitted on one half, scored on the other."""
    results = []
    deltas = []
    for k in (0, 1):
        fit_one, fit_link, fit_non = halves[0][k], halves[1][k], halves[2][k]
        out_one, out_link, out_non = halves[0][1 - k], halves[1][1 - k], halves[2][1 - k]
        delta = fit_source_prior(forward[fit_one], backward[fit_one], log_in[u1][fit_one],
                                 log_in[v1][fit_one], 0.0,
                                 (edges[fit_link], log_in[a][fit_link]),
                                 (non_edges[fit_non], log_in[c][fit_non]))["delta"]
        deltas.append(delta)
        link = global_link_metrics(edges[out_link] + delta * log_in[a][out_link],
                                   non_edges[out_non] + delta * log_in[c][out_non])
        auc = direction_auc(forward[out_one] + delta * log_in[u1][out_one],
                            backward[out_one] + delta * log_in[v1][out_one])
        results.append((auc, link))
    auc = sum(r[0] for r in results) / 2
    link = {key: sum(r[1][key] for r in results) / 2 for key in results[0][1]}
    return auc, link, deltas


print("method | form | direction AUC / global AUC / Hits@20 / Hits@50 / Hits@100 "
      "| with delta (2-fold): direction AUC / AUC / Hits@50, deltas")
for name, build in methods.items():
    started = time.time()
    rows = build()
    forward, backward = transformed(rows, u1, v1), transformed(rows, v1, u1)
    edges, non_edges = transformed(rows, a, b), transformed(rows, c, d)
    for form in ("raw", "z", "rank"):
        auc = direction_auc(forward[form], backward[form])
        link = global_link_metrics(edges[form], non_edges[form])
        fitted_auc, fitted_link, deltas = cross_fit(forward[form], backward[form], edges[form],
                                                    non_edges[form])
        print(f"{name} | {form} | {auc:.4f} / {link['auc']:.4f} / {link['hits@20']:.4f} / "
              f"{link['hits@50']:.4f} / {link['hits@100']:.4f} | {fitted_auc:.4f} / "
              f"{fitted_link['auc']:.4f} / {fitted_link['hits@50']:.4f}, {deltas}", flush=True)
    print(f"({name}: {time.time() - started:.0f} s)", flush=True)
