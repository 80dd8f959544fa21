"""``blade ablate``: one training per model choice, on the validation edges of the ingested graph.

    blade ablate --dataset amazon0302            # every row of params.yaml `ablation.rows`
    blade ablate --dataset cora_ml --rows ours "no similarity channel"
    blade ablate --edges my_edges.csv --name mine
    blade ablate --dataset cora_ml --rows "similarity loss" --seeds 43 44 45   # + ours, other splits

Each row is a set of overrides of ``params.yaml`` (``ours`` = the file as it is; a ``variant``
key picks another model, e.g. ``sage``). Every row trains on the split of seed ``ablation.seed``
(ingested as ``blade compare`` does, into a temporary folder), with that seed, until early
stopping, on ``params.yaml``'s values (no tuned values: the rows differ in exactly their
overrides), and records the validation MRR@10 / HR@10 of its best epoch, the untrained model's,
the curve per epoch and its time, in ``reports/ablation/<name>/<row>.json``. Nothing here looks
at test edges.

Two steps (``--step``; without it both, in order), each a stage of ``reports/dvc.yaml``:
``rows`` trains the chosen rows (one DVC stage per graph and row), ``summary`` ranks the
co-occurrence and popularity baselines on the same validation edges and gathers the rows of
``ablation.rows`` into ``reports/ablation/<name>.json`` (rows not trained yet are listed as
``pending``). DVC is the only cache: a step called again trains again, and ``dvc repro
reports/dvc.yaml`` calls only the rows whose code, parameters or data changed. ``blade report``
turns the file into the ablation table and the training-curve figure of ``docs/report.md``.

Seeds: one split says little on a small graph. ``--seeds`` trains the chosen rows and ``ours`` again
on other splits, into ``reports/ablation/seeds/<name>-<seed>/`` and
``reports/ablation/seeds/<name>-<seed>.json``, and the report gives each row's difference from
ours paired by seed.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import torch

from models.baselines import cooccurrence_scores, popularity_scores
from models.evaluation import pairs_from_rows
from models.graph import in_out_degrees
from models.pair_metrics import direction_auc
from models.training import low_degree_queries, trained_scores, validation_scores
from models.variants import get_variant
from pipeline import compare, provenance
from pipeline.artifacts import SplitGraph
from pipeline.config import ConfigError, with_values
from pipeline.settings import check_params, typed
from pipeline.storage import write_json
from pipeline.train import build_module, fit_variant

log = logging.getLogger(__name__)

REPORT_DIR = Path("reports/ablation")
SEEDS_DIR = REPORT_DIR / "seeds"  # `--seeds`: the rows again on other splits, one folder per seed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--dataset", help="a graph listed under compare.datasets in params.yaml")
    source.add_argument("--edges", help="any edge list `blade ingest` reads (then give --name)")
    parser.add_argument("--name", help="report name for --edges (default: the file's stem)")
    parser.add_argument("--rows", nargs="+", help="row names of ablation.rows (default: all)")
    parser.add_argument("--step", choices=("rows", "summary"),
                        help="rows: train the chosen rows; summary: the baselines and every trained row "
                             "into reports/ablation/NAME.json (default: both; reports/dvc.yaml runs "
                             "each row as a stage of its own)")
    parser.add_argument("--seeds", type=int, nargs="+", metavar="SEED",
                        help="repeat the rows (and ours) on these split seeds, each into "
                             "reports/ablation/seeds/<name>-<seed>.json; the report pairs every row "
                             "with ours seed by seed (default: ablation.seed, into "
                             "reports/ablation/<name>/)")


def row_params(params: dict[str, Any], name: str, overrides: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The row's variant and parameters, checked like params.yaml itself."""
    overrides = dict(overrides)
    variant = str(overrides.pop("variant", "blade"))
    return variant, check_params(with_values(params, overrides), f"params.yaml: ablation.rows.{name}")


def baselines(graph, module, low_degree_max: int) -> dict[str, dict[str, float]]:
    """Co-occurrence and popularity on the rows' validation edges (the module's sample) and
    one-way validation edges (direction AUC)."""
    validation = module.validation
    low = low_degree_queries(graph, validation, low_degree_max)
    in_degree, _ = in_out_degrees(graph.train, graph.num_nodes)
    out = {}
    for name, score_fn in (("cooccurrence", cooccurrence_scores(graph.train, graph.num_nodes)),
                           ("popularity", popularity_scores(in_degree))):
        pairs = pairs_from_rows(score_fn)
        u, v = validation.one_way
        out[name] = validation_scores(score_fn, validation, low) | {
            "val_direction_auc": _rounded(direction_auc(pairs(u, v), pairs(v, u)))}
    return out


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def row_path(folder: Path, row_name: str) -> Path:
    return folder / f"{row_name}.json"


def main(params: dict[str, Any], args: argparse.Namespace) -> dict[str, Any] | None:
    settings = typed(params).ablation
    rows = settings.rows
    if not rows:
        raise ConfigError("params.yaml: ablation.rows is empty: give at least one row (ours: {})")
    chosen = args.rows or list(rows)
    unknown = [name for name in chosen if name not in rows]
    if unknown:
        raise ConfigError(f"params.yaml: ablation.rows has no {', '.join(map(repr, unknown))} "
                          f"(known: {', '.join(rows)})")
    name, params = compare.settings(params, args)
    steps = [args.step] if getattr(args, "step", None) else ["rows", "summary"]
    repeats = getattr(args, "seeds", None)
    if repeats:
        chosen = chosen if "ours" in chosen else ["ours", *chosen]  # each seed's rows pair with its ours
    runs = [(seed, SEEDS_DIR / f"{name}-{seed}") for seed in repeats] if repeats else [
        (settings.seed, REPORT_DIR / name)]
    summaries = {}
    for seed, folder in runs:
        with compare.seed_split(params, seed) as (graph, _):
            if "rows" in steps:
                for row_name in chosen:
                    train_row(params, rows, row_name, graph, seed, row_path(folder, row_name))
            if "summary" in steps:
                summaries[seed] = summarise(params, rows, name, graph, seed, folder)
    if "summary" not in steps:
        return None
    return summaries[settings.seed] if not repeats else {"dataset": name, "seeds": summaries}


def train_row(params: dict[str, Any], rows: dict[str, Any], row_name: str, graph: SplitGraph, seed: int,
              path: Path) -> dict[str, Any]:
    """Train one row on ``graph`` and write its result to ``path``."""
    variant, row = row_params(params, row_name, rows[row_name])
    log.info("ablate: %s: %s %s", row_name, variant, rows[row_name] or "(params.yaml)")
    low_degree_max = int(params["evaluate"]["low_degree_max"])
    started = time.perf_counter()
    result = fit_variant(variant, graph, row["neighbourhood"], row["train"], seed, None, progress=False,
                         baselines=params["evaluate"]["baselines"])
    low = trained_scores(graph, result.module, low_degree_max, result.walk_channel)
    finished = {
        "variant": variant, "overrides": rows[row_name], "seed": seed,
        "best_val_mrr@10": round(result.best_score, 5),
        "best_epoch": result.curve.index(max(result.curve)) + 1 if result.curve else None,
        "untrained_val_mrr@10": (None if result.untrained_score is None
                                 else round(result.untrained_score, 5)),
        "val_mrr@10_curve": [round(score, 5) for score in result.curve],
        "val_low_mrr@10": low["val_low_mrr@10"], "val_low_hit_rate@10": low["val_low_hit_rate@10"],
        # the model as it scores: with its walk channel (the same as best_val_mrr@10 without one)
        "val_mrr@10_scored": low["val_mrr@10"], "walk_channel": result.walk_fit,
        "target_prior": result.target_prior,
        "val_direction_auc": _rounded(result.module.validation_direction_auc()),
        "epochs": result.epochs, "seconds": round(time.perf_counter() - started, 1),
        "seconds_per_epoch": round(result.seconds_per_epoch, 2),
        "threads": torch.get_num_threads(), "git_commit": provenance.git_commit(),
    }
    write_json(path, finished)
    log.info("ablate: %s: best val MRR@10 %.4f at epoch %s of %d (untrained %.4f), %.0f s",
             row_name, result.best_score, finished["best_epoch"], result.epochs,
             result.untrained_score or float("nan"), finished["seconds"])
    return finished


def summarise(params: dict[str, Any], rows: dict[str, Any], name: str, graph: SplitGraph, seed: int,
              folder: Path) -> dict[str, Any]:
    """The baselines on the rows' validation edges and every row of ``rows`` found in ``folder``,
    in ``rows`` order, into ``<folder>.json``."""
    variant, row = row_params(params, "ours", rows.get("ours", {}))
    module = build_module(get_variant(variant), graph, row["neighbourhood"], row["train"], seed)
    finished = {row_name: json.loads(row_path(folder, row_name).read_text())
                for row_name in rows if row_path(folder, row_name).is_file()}
    report = {"dataset": name, "seed": seed, "nodes": graph.num_nodes,
              "train_edges": int(graph.train.shape[1]),
              "threads": next((entry["threads"] for entry in finished.values()), torch.get_num_threads()),
              "baselines": baselines(graph, module, int(params["evaluate"]["low_degree_max"])),
              "val_edges": int(module.validation.edges.shape[1]),
              "val_one_way_edges": int(module.validation.one_way.shape[1]),
              "rows": finished, "pending": [row_name for row_name in rows if row_name not in finished]}
    write_json(folder.with_suffix(".json"), report)
    if report["pending"]:
        log.warning("ablate: %s: %d rows not trained yet: %s", name, len(report["pending"]),
                    ", ".join(report["pending"]))
    return report
