"""Stage ``degree_stats``: degrees, one-way share, power-law fit alpha_hat, and the n_u it implies.

    blade degree-stats                 # reads params.yaml (base, neighbourhood, tune.space)

alpha_hat is fitted twice: on the whole clean graph (the figure the method doc tabulates) and on
the training split (what training uses, so held-out edges never shape a neighbourhood).
Outputs: ``outputs/degree_stats/degrees.parquet`` (per node: degrees and n_u),
``outputs/degree_stats/power_law.json`` (the training fit for every d_min training or tuning may
use: what ``tune`` and ``train`` size neighbourhoods from, :func:`with_power_law`),
``metrics/degree_stats.json``, ``plots/in_degree_distribution.png`` (log-log CCDF + fitted law).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from models.graph import in_out_degrees
from models.pair_metrics import one_way_mask
from models.power_law import adaptive_sizes, fit_power_law_alpha, power_law_ccdf
from pipeline.artifacts import SplitGraph, load_split_graph
from pipeline.config import StageError
from pipeline.settings import NeighbourhoodSettings, as_settings, typed
from pipeline.storage import pyplot, save_figure, whole_outputs, write_json, write_parquet

log = logging.getLogger(__name__)

OUTPUT_DIR = Path("outputs/degree_stats")
POWER_LAW_PATH = OUTPUT_DIR / "power_law.json"  # read by tune and train (with_power_law)
MIN_FITTED_D_MIN = 10  # fits for d_min 1..10 at least, so a tuning range needs no re-run
METRICS_PATH = Path("metrics/degree_stats.json")
PLOT_PATH = Path("plots/in_degree_distribution.png")


def degree_statistics(graph: SplitGraph, neighbourhood: NeighbourhoodSettings | dict[str, Any],
                      ) -> tuple[dict, pd.DataFrame]:
    """Metrics dictionary and the per-node table (degrees on the full and training graph, n_u)."""
    neighbourhood = as_settings(neighbourhood, NeighbourhoodSettings)
    d_min = neighbourhood.d_min
    edges = graph.all_edges
    in_degree, out_degree = in_out_degrees(edges, graph.num_nodes)
    train_in, train_out = in_out_degrees(graph.train, graph.num_nodes)
    alpha_hat = fit_power_law_alpha(in_degree, d_min)
    n_max = neighbourhood.n_max
    sizes, alpha_hat_train, alpha = adaptive_sizes(
        train_in, d_min=d_min, alpha=neighbourhood.alpha, alpha_multiplier=neighbourhood.alpha_multiplier,
        n_min=neighbourhood.n_min, n_max=n_max)
    one_way = one_way_mask(edges, edges, graph.num_nodes)
    metrics = {
        "nodes": graph.num_nodes,
        "edges": int(edges.shape[1]),
        "one_way_edge_share": round(float(one_way.float().mean()), 4),
        "in_degree_zero": int((in_degree == 0).sum()),
        "out_degree_zero": int((out_degree == 0).sum()),
        "max_in_degree": int(in_degree.max()),
        "max_out_degree": int(out_degree.max()),
        "d_min": d_min,
        "tail_nodes": int((in_degree >= d_min).sum()),
        "alpha_hat": round(alpha_hat, 4),
        "alpha_hat_train": round(alpha_hat_train, 4),
        "alpha_used": round(alpha, 4),
        "neighbourhood_size_mean": round(float(sizes.float().mean()), 3),
        "neighbourhood_size_min": int(sizes.min()),
        "neighbourhood_size_max": int(sizes.max()),
        "share_at_n_max": round(float((sizes == n_max).float().mean()), 4),
        "share_needing_top_up": round(float((train_out < sizes).float().mean()), 4),
    }
    table = pd.DataFrame({
        "node": np.arange(graph.num_nodes, dtype=np.int64),
        "in_degree": in_degree.numpy(), "out_degree": out_degree.numpy(),
        "train_in_degree": train_in.numpy(), "train_out_degree": train_out.numpy(),
        "neighbourhood_size": sizes.numpy(),
    })
    return metrics, table


def plot_in_degree_distribution(in_degree: np.ndarray, alpha_hat: float, d_min: int,
                                title: str, path: Path) -> None:
    """Empirical CCDF P(D >= d) of in-degrees on log-log axes with the fitted power law over it."""
    plt = pyplot()
    values, counts = np.unique(in_degree[in_degree >= 1], return_counts=True)
    ccdf = counts[::-1].cumsum()[::-1] / len(in_degree)
    tail_share = float((in_degree >= d_min).mean())
    grid = np.unique(np.geomspace(d_min, values.max(), 200))
    fitted = tail_share * power_law_ccdf(torch.from_numpy(grid), alpha_hat, d_min).numpy()
    figure, axes = plt.subplots(figsize=(6, 4.2), dpi=110)
    axes.loglog(values, ccdf, "o", markersize=3, alpha=0.7, label="observed P(D_in >= d)")
    axes.loglog(grid, fitted, "-", linewidth=2,
                label=f"power law, alpha_hat = {alpha_hat:.2f} (d_min = {d_min})")
    axes.set_xlabel("in-degree d")
    axes.set_ylabel("share of nodes with in-degree >= d")
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    save_figure(figure, path)


def power_law_fits(graph: SplitGraph, largest_d_min: int) -> dict[str, Any]:
    """alpha_hat of the training in-degrees for every d_min from 1 to ``largest_d_min`` (None
    where the tail has no spread), with the graph's size so a reader can check it matches."""
    train_in, _ = in_out_degrees(graph.train, graph.num_nodes)
    fits: dict[str, float | None] = {}
    for d_min in range(1, largest_d_min + 1):
        try:
            fits[str(d_min)] = fit_power_law_alpha(train_in, d_min)
        except ValueError:
            fits[str(d_min)] = None
    return {"nodes": graph.num_nodes, "train_edges": int(graph.train.shape[1]), "alpha_hat_by_d_min": fits}


def largest_d_min(settings) -> int:
    """The largest d_min training or tuning may use: neighbourhood.d_min, tune.space's range."""
    searched = settings.tune.space.get("neighbourhood.d_min")
    high = int(searched.high) if searched is not None and searched.high is not None else 0
    if searched is not None and searched.choices:
        high = max(high, *(int(choice) for choice in searched.choices))
    return max(MIN_FITTED_D_MIN, settings.neighbourhood.d_min, high)


def with_power_law(graph: SplitGraph, path: Path = POWER_LAW_PATH) -> SplitGraph:
    """``graph`` carrying the degree statistics' power-law fits (``alpha_hats``): tune and train
    size neighbourhoods from them instead of fitting again."""
    if not path.is_file():
        raise StageError(f"{path} not found: run `blade degree-stats` (`dvc repro` runs it before "
                         "tune and train)")
    saved = json.loads(path.read_text())
    if saved.get("nodes") != graph.num_nodes or saved.get("train_edges") != int(graph.train.shape[1]):
        raise StageError(f"{path} was computed for another graph ({saved.get('nodes')} nodes, "
                         f"{saved.get('train_edges')} training edges; this one has {graph.num_nodes}, "
                         f"{int(graph.train.shape[1])}): re-run `blade degree-stats`")
    fits = {int(d_min): value for d_min, value in saved["alpha_hat_by_d_min"].items()}
    return dataclasses.replace(graph, alpha_hats=fits)


@whole_outputs
def main(params: dict[str, Any]) -> dict[str, Any]:
    settings = typed(params)
    graph = load_split_graph()
    metrics, table = degree_statistics(graph, settings.neighbourhood)
    write_parquet(OUTPUT_DIR / "degrees.parquet", table)
    write_json(POWER_LAW_PATH, power_law_fits(graph, largest_d_min(settings)))
    write_json(METRICS_PATH, metrics)
    if settings.degree_stats.plot:
        plot_in_degree_distribution(table["in_degree"].to_numpy(), metrics["alpha_hat"],
                                    metrics["d_min"], f"{settings.base.dataset}: in-degree distribution",
                                    PLOT_PATH)
    log.info(
        "degree_stats: alpha_hat = %.3f (d_min = %d; training split %.3f), one-way edges %.1f%%, "
        "in-degree 0: %s, out-degree 0: %s; n_u mean %.2f in [%d, %d]",
        metrics["alpha_hat"], metrics["d_min"], metrics["alpha_hat_train"],
        100 * metrics["one_way_edge_share"], f"{metrics['in_degree_zero']:,}",
        f"{metrics['out_degree_zero']:,}", metrics["neighbourhood_size_mean"],
        metrics["neighbourhood_size_min"], metrics["neighbourhood_size_max"],
    )
    return metrics
