"""Stage ``evaluate``: filtered full ranking of the test edges for every trained model and baseline.

    blade evaluate                        # reads params.yaml (base, evaluate)

Every method is scored by the same evaluator on the same test edges: rank the true target among
all nodes, excluding the query and its training out-neighbours (filtered ranking). Graphs with
more test edges than ``evaluate.max_queries`` are evaluated on a seeded sample of that many
test edges; the output states how many. Writes ``metrics/evaluate.json`` (overall, direction
AUC, per in-degree bucket of the query), ``plots/hit_rate_by_degree.png`` and
``outputs/evaluate/hit_rate_by_degree.csv``, and prints the table.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm.auto import tqdm

from models.baselines import (
    choose_on_validation,
    cooccurrence_scores,
    item_knn_scores,
    popularity_scores,
    walk_families,
)
from models.direction import calibrate_pairs
from models.evaluation import SUBSETS, EvaluationSet, evaluate_scorer, low_degree_metrics, saved_scorers
from models.graph import in_out_degrees, reverse_exists
from models.metrics import out_neighbour_csr
from models.pair_metrics import one_way_mask, uniform_non_edges
from models.training import validation_set
from pipeline.artifacts import SplitGraph, load_split_graph
from pipeline.config import ConfigError
from pipeline.settings import BaselineSettings, typed
from pipeline.storage import atomic_path, pyplot, save_figure, whole_outputs, write_json, write_parquet
from pipeline.train import OUTPUT_DIR as TRAIN_DIR

log = logging.getLogger(__name__)

OUTPUT_DIR = Path("outputs/evaluate")
METRICS_PATH = Path("metrics/evaluate.json")
PLOT_PATH = Path("plots/hit_rate_by_degree.png")
TABLE_PATH = OUTPUT_DIR / "results.txt"  # the printed table, for `make run` to show at the end


def evaluation_set(graph: SplitGraph, split: str, max_queries: int, seed: int,
                   ks: tuple[int, ...], low_degree_max: int,
                   non_edges: int = 0) -> tuple[EvaluationSet, int]:
    """The (possibly sampled) evaluation edges of ``split`` and ``non_edges`` seeded uniform
    non-edges of the whole graph (the global metric's pool); returns it and the split's size."""
    edges = getattr(graph, split)
    total = edges.shape[1]
    if max_queries and total > max_queries:
        chosen = torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:max_queries]
        edges = edges[:, chosen.sort().values]
    in_degree, _ = in_out_degrees(graph.train, graph.num_nodes)
    indptr, indices = out_neighbour_csr(graph.train, graph.num_nodes)
    return EvaluationSet(
        edges=edges, exclude_indptr=indptr, exclude_indices=indices,
        query_in_degree=in_degree[edges[0]],
        one_way=one_way_mask(edges, graph.all_edges, graph.num_nodes),
        num_nodes=graph.num_nodes, ks=tuple(ks), low_degree_max=low_degree_max,
        reverse_in_train=reverse_exists(edges, graph.train, graph.num_nodes),
        non_edges=(uniform_non_edges(graph.all_edges, graph.num_nodes, non_edges, seed)
                   if non_edges else None),
    ), total


def baseline_candidates(graph: SplitGraph,
                        config: BaselineSettings) -> dict[str, tuple[Callable, list[dict]]]:
    """Each training-free recommender: a builder and its grid (``evaluate.baselines``)."""
    edges, nodes = graph.train, graph.num_nodes
    return walk_families(edges, nodes, config.walk_weights, config.rp3beta_alpha, config.rp3beta_beta) | {
        "item_knn": (lambda shrink: item_knn_scores(edges, nodes, shrink),
                     [{"shrink": h} for h in config.item_knn_shrink]),
    }


def baseline_scorers(graph: SplitGraph, config: BaselineSettings, seed: int) -> dict[str, tuple]:
    """Popularity, co-occurrence and the training-free graph recommenders, each with its grid
    point chosen on the first ``config.val_queries`` of training's validation sample
    (:func:`models.training.validation_set`: never a test edge) and, with
    ``config.calibrate_direction``, the direction calibration BLADE gets
    (:func:`models.direction.calibrate_pairs`, on the same validation edges).

    Returns ``{name: (rows, pairs, info)}``; ``info``: the chosen settings, the grid's
    validation MRR@10 and the calibration.
    """
    validation = validation_set(graph, config.val_queries, seed)
    in_degree, _ = in_out_degrees(graph.train, graph.num_nodes)
    popularity = popularity_scores(in_degree)
    cooccurrence = cooccurrence_scores(graph.train, graph.num_nodes)
    methods: dict[str, tuple] = {
        "popularity": (popularity, lambda u, v: in_degree[v].float(), {}),
        "cooccurrence": (cooccurrence, cooccurrence.pairs, {}),
    }
    for name, (build, grid) in baseline_candidates(graph, config).items():
        info: dict[str, Any] = {}
        if validation is not None and len(grid) > 1:
            chosen, tried = choose_on_validation(build, grid, validation.edges, validation.exclude_indptr,
                                                 validation.exclude_indices, graph.num_nodes)
            info = {"chosen": chosen, "grid": tried}
        else:
            chosen = grid[0]
            info = {"chosen": chosen}
        recommender = build(**chosen)
        methods[name] = (recommender, recommender.pairs, info)
        log.info("evaluate: %s: %s", name, ", ".join(f"{key} {value}" for key, value in chosen.items()))
    if config.calibrate_direction and validation is not None and validation.one_way.shape[1] > 0:
        for name, (rows, pairs, info) in list(methods.items()):
            calibrated, fit = calibrate_pairs(pairs, validation.one_way, validation.edges,
                                              validation.non_edges, in_degree)
            methods[name] = (rows, calibrated, info | {"direction": fit})
    return methods


def scorers(graph: SplitGraph, train_dir: Path, baselines: BaselineSettings | None = None,
            seed: int = 0) -> dict[str, tuple]:
    """Every method to evaluate: trained variants (their embeddings and walk channel) then the
    baselines (:func:`baseline_scorers`). Returns ``{name: (rows, pairs, info)}``."""
    methods = {}
    for path in sorted(train_dir.glob("*/embeddings.pt")):
        saved = torch.load(path, map_location="cpu", weights_only=True)
        walk = saved.get("walk_channel")
        info = {"walk_channel": {key: walk[key] for key in ("weight", "floor")} if walk else None}
        methods[saved["variant"]] = (*saved_scorers(saved), info)
    methods.update(baseline_scorers(graph, baselines or BaselineSettings(), seed))
    return methods


def results_table(results: dict[str, dict], ks: tuple[int, ...]) -> pd.DataFrame:
    rows = []
    for method, result in results.items():
        low = low_degree_metrics(result)
        row = {"method": method}
        row.update({f"HR@{k}": result["overall"][f"hit_rate@{k}"] for k in ks})
        row.update({f"MRR@{k}": result["overall"][f"mrr@{k}"] for k in ks})
        row["dir_AUC"] = result["direction_auc"]
        row["low HR@10"] = low.get("hit_rate@10", float("nan"))
        row["low MRR@10"] = low.get("mrr@10", float("nan"))
        subsets = result.get("subsets", {})
        row["rev MRR@10"] = subsets.get(SUBSETS[0], {}).get("mrr@10", float("nan"))
        row["other MRR@10"] = subsets.get(SUBSETS[1], {}).get("mrr@10", float("nan"))
        row["global AUC"] = result.get("global", {}).get("auc", float("nan"))
        row["Hits@50"] = result.get("global", {}).get("hits@50", float("nan"))
        rows.append(row)
    return pd.DataFrame(rows)


def plot_hit_rate_by_degree(frame: pd.DataFrame, title: str, path: Path) -> None:
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(7, 4.2), dpi=110)
    for method, group in frame.groupby("method", sort=False):
        axes.plot(group["bucket"], group["hit_rate@10"], marker="o", label=method)
    axes.set_xlabel("in-degree bucket of the query (training graph)")
    axes.set_ylabel("HitRate@10 (filtered)")
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend()
    plt.setp(axes.get_xticklabels(), rotation=15, ha="right")
    figure.tight_layout()
    save_figure(figure, path)


@whole_outputs
def main(params: dict[str, Any]) -> dict[str, Any]:
    settings = typed(params)
    base, config = settings.base, settings.evaluate
    graph = load_split_graph()
    ks = tuple(config.ks)
    evaluation, total = evaluation_set(graph, config.split, config.max_queries, base.seed, ks,
                                       config.low_degree_max, config.non_edges)
    queries = evaluation.edges.shape[1]
    if queries == 0:
        raise ConfigError(f"evaluate: the {config.split} split has no edges to rank (ingest.split."
                          f"{config.split} is {getattr(settings.ingest.split, config.split):g}); "
                          "nothing to evaluate")
    log.info("evaluate: %s of %s %s edges (%s), filtered ranking over all %s nodes",
             f"{queries:,}", f"{total:,}", config.split,
             "all" if queries == total else f"seeded sample, seed {base.seed}",
             f"{graph.num_nodes:,}")
    results: dict[str, Any] = {}
    for method, (rows, pairs, info) in scorers(graph, TRAIN_DIR, config.baselines, base.seed).items():
        started = time.perf_counter()
        with tqdm(total=queries, desc=f"evaluate {method}", unit="query", leave=False) as bar:
            results[method] = evaluate_scorer(rows, pairs, evaluation,
                                              progress=lambda done, bar=bar: bar.update(done - bar.n))
        results[method]["seconds"] = round(time.perf_counter() - started, 2)
        results[method]["settings"] = info
    curves = pd.DataFrame([
        {"method": method, "bucket": bucket, "hit_rate@10": values["hit_rate@10"],
         "count": values["count"]}
        for method, result in results.items() for bucket, values in result["buckets"].items()
    ])
    write_parquet(OUTPUT_DIR / "hit_rate_by_degree.parquet", curves)
    plot_hit_rate_by_degree(curves, f"{base.dataset}: HitRate@10 by query in-degree", PLOT_PATH)
    payload = {"dataset": base.dataset, "split": config.split,
               "evaluated_edges": queries, "split_edges": total, "seed": base.seed,
               "filtered": "query and its training out-neighbours excluded", "methods": results}
    write_json(METRICS_PATH, payload)
    table = results_table(results, ks)
    heading = (f"{base.dataset}: filtered ranking of {queries:,} {config.split} "
               f"edges against all {graph.num_nodes:,} nodes (seed {base.seed}); "
               f"'low' = queries with training in-degree <= {evaluation.low_degree_max}; "
               f"'rev' = edges q -> v whose reverse v -> q is a training edge, 'other' the rest; "
               f"global AUC, Hits@50: the edges against {config.non_edges:,} uniform non-edges")
    text = f"{heading}\n{table.to_string(index=False, float_format=lambda x: f'{x:.4f}')}\n"
    with atomic_path(TABLE_PATH) as tmp:
        tmp.write_text(text)
    print(f"\n{text}", end="")
    return payload
