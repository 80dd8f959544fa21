"""``blade compare``: BLADE, its ablations, DAEMON and the baselines on one graph, same split.

    blade compare --dataset cora_ml                   # a graph named in params.yaml compare.datasets
    blade compare --edges my_edges.csv --name mine    # any edge list ingest can read
    blade compare --dataset amazon0302 --seeds 0 1 2

For each seed: ingest (clean + seeded split) into ``outputs/compare/<name>/seed<k>/``, train
every variant in ``compare.variants`` with the ``train`` parameters plus the dataset's
overrides, evaluate them and the baselines with the evaluate stage's protocol (filtered
ranking, same test edges, seeded sample of at most ``evaluate.max_queries``). Writes
``reports/compare/<name>.json`` (every seed's metrics plus mean and standard deviation) and
prints the table.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from models.evaluation import evaluate_scorer, low_degree_metrics
from pipeline import evaluate as evaluate_stage
from pipeline import ingest as ingest_stage
from pipeline.artifacts import load_split_graph
from pipeline.config import ConfigError, section
from pipeline.storage import write_json
from pipeline.train import fit_variant, save_embeddings

log = logging.getLogger(__name__)

REPORT_DIR = Path("reports/compare")
WORK_DIR = Path("outputs/compare")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--dataset", help="a graph listed under compare.datasets in params.yaml")
    source.add_argument("--edges", help="any edge list `blade ingest` reads (then give --name)")
    parser.add_argument("--name", help="report name for --edges (default: the file's stem)")
    parser.add_argument("--seeds", type=int, nargs="+", help="seeds (default: compare.seeds)")
    parser.add_argument("--variants", nargs="+", help="trained variants (default: compare.variants)")


def compare(name: str, ingest_config: dict[str, Any], train_config: dict[str, Any],
            neighbourhood: dict[str, Any], evaluate_config: dict[str, Any],
            variants: list[str], seeds: list[int]) -> dict[str, Any]:
    runs = []
    for seed in seeds:
        directory = WORK_DIR / name / f"seed{seed}"
        ingest_metrics = ingest_stage.ingest(
            ingest_config["edges"], directory / "ingest", fmt=ingest_config.get("format", "auto"),
            source_column=ingest_config.get("source_column", "source"),
            target_column=ingest_config.get("target_column", "target"),
            id_type=ingest_config.get("id_type", "auto"), split=ingest_config["split"], seed=seed,
            verify_checksums=bool(ingest_config.get("verify_checksums", True)))
        graph = load_split_graph(directory / "ingest")
        ks = tuple(int(k) for k in evaluate_config.get("ks", (5, 10, 20)))
        evaluation, total = evaluate_stage.evaluation_set(
            graph, "test", int(evaluate_config.get("max_queries", 0)), seed, ks,
            int(evaluate_config.get("low_degree_max", 2)))
        trained = {}
        for variant in variants:
            log.info("compare %s seed %d: training %s", name, seed, variant)
            result = fit_variant(variant, graph, neighbourhood, train_config, seed, None)
            save_embeddings(directory / "train" / variant / "embeddings.pt", result.module, variant)
            trained[variant] = {"epochs": result.epochs, "seconds": round(result.seconds, 1),
                                "best_val_mrr@10": result.best_score}
        results = {}
        for method, (rows, pairs) in evaluate_stage.scorers(graph, directory / "train").items():
            started = time.perf_counter()
            results[method] = evaluate_scorer(rows, pairs, evaluation)
            results[method]["eval_seconds"] = round(time.perf_counter() - started, 2)
            results[method].update(trained.get(method, {}))
        runs.append({"seed": seed, "nodes": ingest_metrics["nodes"], "edges": ingest_metrics["edges"],
                     "evaluated_edges": evaluation.edges.shape[1], "test_edges": total,
                     "methods": results})
    return {"name": name, "seeds": seeds, "variants": variants, "train": train_config,
            "neighbourhood": neighbourhood, "runs": runs, "summary": summarise(runs)}


def summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Mean and standard deviation over seeds of every headline metric, per method."""
    table: dict[str, dict[str, list[float]]] = {}
    for run in runs:
        for method, result in run["methods"].items():
            values = dict(result["overall"])
            values["direction_auc"] = result["direction_auc"]
            low = low_degree_metrics(result)
            if low:
                values.update({f"low_{key}": value for key, value in low.items() if key != "count"})
            for key, value in values.items():
                if key != "count":
                    table.setdefault(method, {}).setdefault(key, []).append(float(value))
    return {method: {key: {"mean": float(np.mean(v)), "std": float(np.std(v)), "n": len(v)}
                     for key, v in metrics.items()} for method, metrics in table.items()}


def summary_frame(summary: dict[str, Any], keys: list[str]) -> pd.DataFrame:
    rows = []
    for method, metrics in summary.items():
        row = {"method": method}
        for key in keys:
            cell = metrics.get(key)
            row[key] = (f"{cell['mean']:.4f} ± {cell['std']:.4f}" if cell and cell["n"] > 1
                        else f"{cell['mean']:.4f}" if cell else "-")
        rows.append(row)
    return pd.DataFrame(rows)


def main(params: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    config = section(params, "compare")
    base_ingest = dict(section(params, "ingest"))
    train_config = dict(section(params, "train"))
    if args.edges:
        name = args.name or Path(args.edges).name.split(".")[0]
        ingest_config = dict(base_ingest, edges=args.edges)
        overrides: dict[str, Any] = {}
    else:
        name = args.dataset or section(params, "base")["dataset"]
        datasets = config.get("datasets", {})
        if name not in datasets:
            raise ConfigError(f"params.yaml: compare.datasets has no '{name}' "
                              f"(known: {', '.join(datasets)}); or pass --edges FILE")
        ingest_config = dict(base_ingest, **{k: v for k, v in datasets[name].items() if k != "train"})
        overrides = datasets[name].get("train", {})
    train_config.update(overrides)
    variants = args.variants or list(config["variants"])
    seeds = args.seeds or [int(seed) for seed in config["seeds"]]
    started = time.perf_counter()
    report = compare(name, ingest_config, train_config, section(params, "neighbourhood"),
                     section(params, "evaluate"), variants, seeds)
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["threads"] = torch.get_num_threads()
    write_json(REPORT_DIR / f"{name}.json", report)
    keys = ["hit_rate@10", "mrr@10", "low_hit_rate@10", "low_mrr@10", "direction_auc"]
    run = report["runs"][0]
    print(f"\n{name}: {run['nodes']:,} nodes, {run['edges']:,} edges; filtered ranking of "
          f"{run['evaluated_edges']:,} of {run['test_edges']:,} test edges; seeds {seeds}; "
          f"low = query training in-degree <= 2; {report['seconds']:.0f} s")
    print(summary_frame(report["summary"], keys).to_string(index=False))
    print(json.dumps({"report": str(REPORT_DIR / f"{name}.json")}))
    return report
