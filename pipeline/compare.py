"""``blade compare``: tuned BLADE, its ablations, DAEMON and the baselines on one graph, over seeds.

    blade compare --dataset cora_ml                   # a graph named in params.yaml compare.datasets
    blade compare --edges my_edges.csv --name mine    # any edge list ingest can read
    blade compare --dataset amazon0302 --seeds 0 1 2
    blade report                                      # docs/report.md from reports/compare/*.json

Three steps, each a stage of ``reports/dvc.yaml`` (``--step``; without it they run in order):

1. **tune**: an Optuna study (``tune.space``, budget ``compare.tune`` plus the dataset's
   ``tune`` overrides) on the first seed's split, objective validation MRR@10, written to
   ``reports/compare/<name>/tuned.json``. Trial 0 is the params.yaml values, so the tuned model is
   never worse than the defaults on validation. The best values go to every variant in
   ``compare.tuned_variants`` (the dual models: the flags of each variant still switch its parts
   off); the undirected SAGE baseline keeps ``train``'s.
2. **seed** (one DVC stage per graph and seed): train every variant in ``compare.variants``,
   evaluate them and the baselines with the evaluate stage's protocol (filtered ranking, same
   test edges, seeded sample of at most ``evaluate.max_queries``) into
   ``reports/compare/<name>/seed<k>.json``, one MLflow run per method in the experiment
   ``compare.mlflow_experiment``.
3. **summary**: ``reports/compare/<name>.json`` (every seed's metrics, mean and standard
   deviation, tuned values, alpha_hat, timings, hardware), and the table printed.

Each step makes the seeded split it needs (ingest: clean + split, seconds) and the embeddings
it evaluates in temporary folders, so its only inputs are the edge file, the code, params.yaml
and the files under ``reports/compare/`` that git keeps: in a fresh clone, after ``dvc pull``,
``dvc status reports/dvc.yaml`` shows every finished stage up to date.

DVC is the only cache: a step runs whole each time it is called, and ``dvc repro
reports/dvc.yaml`` calls only the steps whose code, parameters or inputs changed; an interrupted
run resumes at the first unfinished stage. The seeds of a bundled graph are
``compare.seeds_per_graph``; any other graph takes ``compare.seeds``.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

from models.evaluation import SUBSETS, evaluate_scorer, low_degree_metrics
from models.graph import in_out_degrees
from models.power_law import effective_alpha, fit_power_law_alpha
from models.variants import get_variant
from pipeline import evaluate as evaluate_stage
from pipeline import ingest as ingest_stage
from pipeline import provenance, tracking
from pipeline import tune as tune_stage
from pipeline.artifacts import SplitGraph, load_split_graph
from pipeline.config import ConfigError, section, with_values
from pipeline.settings import BaselineSettings, check_params
from pipeline.storage import write_json
from pipeline.train import channel_walks, fit_variant, save_embeddings

log = logging.getLogger(__name__)

REPORT_DIR = Path("reports/compare")
WORK_DIR = Path("outputs/compare")
SUMMARY_KEYS = ["hit_rate@10", "mrr@10", "low_mrr@10", "rev_mrr@10", "oth_mrr@10", "direction_auc",
                "global_hits@50"]
SUBSET_PREFIXES = ("rev_", "oth_")  # models.evaluation.SUBSETS: reverse in training, the others
STEPS = ("tune", "seed", "summary")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--dataset", help="a graph listed under compare.datasets in params.yaml")
    source.add_argument("--edges", help="any edge list `blade ingest` reads (then give --name)")
    parser.add_argument("--name", help="report name for --edges (default: the file's stem)")
    parser.add_argument("--seeds", type=int, nargs="+",
                        help="seeds (default: the graph's compare.seeds_per_graph, else compare.seeds)")
    parser.add_argument("--variants", nargs="+", help="trained variants (default: compare.variants)")
    parser.add_argument("--step", choices=STEPS,
                        help="one step, as reports/dvc.yaml runs them: split (every seed's ingest), tune "
                        "(the study on the first seed's split), seed (train and evaluate each of --seeds), "
                        "summary (reports/compare/NAME.json from the seeds' files); default: all, in order")
    parser.add_argument("--trials", type=int,
                        help="tuning trials (default: compare.tune.n_trials or the dataset's; 0 = no tuning)")


REPORT_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")  # a file name: no '/', no '..', no absolute path


def settings(params: dict[str, Any], args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """The report name and a copy of ``params`` with the dataset's ingest/train/evaluate/tune
    overrides applied (``tune`` becomes ``compare.tune`` + overrides, with ``tune.space``)."""
    config = section(params, "compare")
    params = json.loads(json.dumps(params))  # deep copy
    dataset_config: dict[str, Any] = {}
    if args.edges:
        name = args.name or Path(args.edges).name.split(".")[0]
        params["ingest"]["edges"] = args.edges
    else:
        name = args.dataset or section(params, "base")["dataset"]
        datasets = config["datasets"]
        if name not in datasets:
            raise ConfigError(f"params.yaml: compare.datasets has no '{name}' "
                              f"(known: {', '.join(datasets)}); or pass --edges FILE")
        dataset_config = dict(datasets[name])
    if not REPORT_NAME.fullmatch(name):
        raise ConfigError(f"--name {name!r}: expected letters, digits, '-', '_' and '.', not starting with "
                          "'.' (it names files under reports/ and outputs/)")
    for key in ("train", "evaluate"):
        params[key].update(dataset_config.pop(key, {}))
    if not args.edges and name in config["seeds_per_graph"]:
        params["compare"]["seeds"] = list(config["seeds_per_graph"][name])
    tune = dict(config["tune"], **dataset_config.pop("tune", {}))
    tune["space"] = section(params, "tune")["space"]
    if getattr(args, "trials", None) is not None:
        tune["n_trials"] = args.trials
    params["tune"] = tune
    params["ingest"].update(dataset_config)
    params["base"]["dataset"] = name
    return name, check_params(params, f"params.yaml: compare.datasets.{name}" if dataset_config
                              or not args.edges else f"--edges {args.edges}")


def tuned_path(name: str) -> Path:
    return REPORT_DIR / name / "tuned.json"


def seed_path(name: str, seed: int) -> Path:
    return REPORT_DIR / name / f"seed{seed}.json"


def ingest_seed(params: dict[str, Any], directory: Path, seed: int) -> dict[str, Any]:
    config = params["ingest"]
    edges = Path(config["edges"])
    if not edges.is_file():
        raise FileNotFoundError(f"{edges}: no such edge list (run `dvc pull` for the bundled graphs)")
    return ingest_stage.ingest(
        edges, directory, fmt=config["format"],
        source_column=config["source_column"], target_column=config["target_column"],
        id_type=config["id_type"], split=config["split"], seed=seed,
        verify_checksums=config["verify_checksums"])


@contextmanager
def seed_split(params: dict[str, Any], seed: int) -> Iterator[tuple[SplitGraph, dict[str, Any]]]:
    """The graph's seeded split (ingest: clean + split), in a folder that is gone afterwards:
    a step makes the split it needs (seconds, even on amazon0302), so nothing but the edge file
    stands between a fresh clone and an up-to-date `dvc status`."""
    with tempfile.TemporaryDirectory(prefix="blade-split-") as folder:
        metrics = ingest_seed(params, Path(folder) / "ingest", seed)
        yield load_split_graph(Path(folder) / "ingest"), metrics


def power_law(graph: SplitGraph, neighbourhood: dict[str, Any]) -> dict[str, float]:
    """alpha_hat of the training in-degrees at ``d_min`` and the alpha the model used."""
    train_in, _ = in_out_degrees(graph.train, graph.num_nodes)
    d_min = int(neighbourhood["d_min"])
    alpha_hat = fit_power_law_alpha(train_in, d_min)
    alpha = effective_alpha(neighbourhood["alpha"], float(neighbourhood["alpha_multiplier"]),
                            alpha_hat)
    return {"d_min": d_min, "alpha_hat": round(alpha_hat, 4), "alpha_used": round(alpha, 4)}


def study_seconds(study_name: str, storage: str) -> float:
    """Time the study's trials took."""
    trials = optuna.load_study(study_name=study_name, storage=storage).get_trials(deepcopy=False)
    return sum((trial.datetime_complete - trial.datetime_start).total_seconds()
               for trial in trials if trial.datetime_start and trial.datetime_complete)


def tune_graph(name: str, params: dict[str, Any], seed: int, experiment: str) -> dict[str, Any]:
    """Step ``tune``: BLADE's study on seed ``seed``'s split (validation edges only), a new study
    each time (DVC re-runs the step when what it reads changes); writes ``tuned.json``, ``{}``
    when ``n_trials`` is 0."""
    tune = params["tune"]
    database = WORK_DIR / name / "optuna.db"  # scratch: the result is tuned.json (and MLflow)
    database.unlink(missing_ok=True)
    database.parent.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{database.resolve()}"
    tuned: dict[str, Any] = {}
    if int(tune["n_trials"]) > 0:
        with seed_split(params, seed) as (graph, _):
            result = tune_stage.run_study(graph, with_values(params, {"base.seed": seed}), tune,
                                          f"compare-{name}", storage, experiment, run_prefix=f"{name}-")
        tuned = {"study": result.name, "storage": str(database), "split_seed": seed,
                 "overrides": result.overrides, "best_trial": result.best_trial,
                 "best_val_mrr@10": round(result.best_value, 5),
                 "default_val_mrr@10": (round(result.default_value, 5)
                                        if result.default_value is not None else None),
                 "trials": result.counts, "seconds": round(study_seconds(result.name, storage), 1),
                 "budget": {key: tune[key] for key in ("n_trials", "timeout_seconds", "max_epochs")}}
    write_json(tuned_path(name), tuned)
    return tuned


def load_tuned(name: str) -> dict[str, Any]:
    path = tuned_path(name)
    if not path.is_file():
        raise ConfigError(f"{path}: not tuned yet; run `blade compare --dataset {name} --step tune` first")
    return json.loads(path.read_text())


def run_seed(name: str, params: dict[str, Any], tuned: dict[str, Any], variants: list[str],
             tuned_variants: list[str], seed: int) -> dict[str, Any]:
    """Step ``seed``: one seed's trained variants and evaluation on its split, written to
    ``reports/compare/<name>/seed<k>.json``."""
    started = time.perf_counter()
    with seed_split(params, seed) as (graph, ingest_metrics), \
            tempfile.TemporaryDirectory(prefix="blade-embeddings-") as train_dir:
        run = evaluate_seed(name, params, tuned, variants, tuned_variants, seed, graph, Path(train_dir))
    run = {"seed": seed, "nodes": ingest_metrics["nodes"], "edges": ingest_metrics["edges"]} | run
    run["seconds"] = round(time.perf_counter() - started, 1)
    write_json(seed_path(name, seed), run)
    log_to_mlflow(name, str(params["compare"]["mlflow_experiment"]), run, tuned,
                  str(params["ingest"]["edges"]))
    return run


def evaluate_seed(name: str, params: dict[str, Any], tuned: dict[str, Any], variants: list[str],
                  tuned_variants: list[str], seed: int, graph: SplitGraph,
                  train_dir: Path) -> dict[str, Any]:
    """The trained variants (embeddings in ``train_dir``) and every baseline on ``graph``'s
    evaluation edges."""
    tuned_params = with_values(params, tuned.get("overrides", {}))
    evaluate_config = params["evaluate"]
    ks = tuple(int(k) for k in evaluate_config["ks"])
    evaluation, total = evaluate_stage.evaluation_set(
        graph, str(evaluate_config["split"]), int(evaluate_config["max_queries"]),
        seed, ks, int(evaluate_config["low_degree_max"]), int(evaluate_config["non_edges"]))
    trained, walks = {}, channel_walks(graph, params["evaluate"]["baselines"])
    for variant in variants:
        chosen = tuned_params if variant in tuned_variants else params
        log.info("compare %s seed %d: training %s (%s values)", name, seed, variant,
                 "tuned" if chosen is tuned_params and tuned else "params.yaml")
        started_ms = int(time.time() * 1000)
        result = fit_variant(variant, graph, chosen["neighbourhood"], chosen["train"], seed, None,
                             walks=walks)
        save_embeddings(train_dir / variant / "embeddings.pt", result, variant)
        trained[variant] = {"started_ms": started_ms, "epochs": result.epochs,
                            "seconds": round(result.seconds, 1),
                            "best_val_mrr@10": result.best_score,
                            "untrained_val_mrr@10": result.untrained_score,
                            "target_prior": result.target_prior,
                            "walk_channel": result.walk_fit,
                            "val_mrr@10_curve": [round(score, 5) for score in result.curve],
                            "tuned": bool(tuned) and variant in tuned_variants}
    results = {}
    baselines = BaselineSettings.model_validate(evaluate_config["baselines"])
    for method, (rows, pairs, info) in evaluate_stage.scorers(graph, train_dir, baselines, seed).items():
        clock, started_ms = time.perf_counter(), int(time.time() * 1000)
        results[method] = evaluate_scorer(rows, pairs, evaluation)
        results[method]["settings"] = info
        results[method]["eval_seconds"] = round(time.perf_counter() - clock, 2)
        results[method].update({"started_ms": started_ms} | trained.get(method, {}),
                               ended_ms=int(time.time() * 1000))
    return {"evaluated_edges": int(evaluation.edges.shape[1]), "test_edges": total,
            "power_law": power_law(graph, tuned_params["neighbourhood"]), "variants": variants,
            "methods": results}


def log_to_mlflow(name: str, experiment: str, run: dict[str, Any], tuned: dict[str, Any], edges: str) -> None:
    """One MLflow run per method of a seed: the UI can then compare methods and seeds."""
    client = tracking.client()
    experiment_id = tracking.experiment_id(client, experiment)
    for method, result in run["methods"].items():
        tags = {"dataset": name, "method": method, "seed": str(run["seed"])}
        if tuned.get("study"):
            tags |= {"tune.study": tuned["study"], "tune.trial": str(tuned.get("best_trial"))}
        run_id = tracking.start_run(client, experiment_id, f"{name}-{method}-seed{run['seed']}", "compare",
                                    tags, start_time=result.get("started_ms"))
        tracking.log_params(client, run_id, {"graph": name, "method": method, "seed": run["seed"],
                                             "tuned": bool(result.get("tuned"))})
        tracking.log_dataset(client, run_id, name, edges, {
            key: run[key] for key in ("nodes", "edges", "evaluated_edges", "test_edges")}, "test")
        tracking.log_metrics(client, run_id, tracking.evaluation_metrics(result) | tracking.summary_metrics(
            {key: result[key] for key in ("best_val_mrr@10", "epochs", "seconds") if key in result}))
        for step, score in enumerate(result.get("val_mrr@10_curve", [])):
            tracking.log_metrics(client, run_id, {"val_mrr@10": score}, step=step)
        client.set_terminated(run_id, "FINISHED", end_time=result.get("ended_ms"))


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
            for prefix, subset in zip(SUBSET_PREFIXES, SUBSETS):
                metrics = result.get("subsets", {}).get(subset, {})
                values.update({f"{prefix}{key}": value for key, value in metrics.items() if key != "count"})
            values.update({f"global_{key}": value for key, value in result.get("global", {}).items()})
            for key, value in values.items():
                if key != "count" and value is not None and np.isfinite(value):  # an empty subset: none
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


def summarise_graph(name: str, params: dict[str, Any], seeds: list[int]) -> dict[str, Any]:
    """Step ``summary``: ``reports/compare/<name>.json`` from the tuning and the seeds' files."""
    tuned = load_tuned(name)
    runs = []
    for seed in seeds:
        path = seed_path(name, seed)
        if not path.is_file():
            raise ConfigError(f"{path}: seed {seed} has not run; `blade compare --dataset {name} "
                              f"--step seed --seeds {seed}` (or `dvc repro reports/dvc.yaml`)")
        runs.append(json.loads(path.read_text()))
    compute = round(tuned.get("seconds", 0.0) + sum(run["seconds"] for run in runs), 1)
    report = {
        "name": name, "edges": str(params["ingest"]["edges"]), "seeds": seeds,
        "variants": runs[0].get("variants"), "tuned_variants": list(params["compare"]["tuned_variants"]),
        "tuned": tuned, "train": params["train"], "neighbourhood": params["neighbourhood"],
        "evaluate": params["evaluate"], "split": params["ingest"]["split"], "runs": runs,
        "summary": summarise(runs), "compute_seconds": compute, "seconds": compute,
        "environment": provenance.environment(),
    }
    write_json(REPORT_DIR / f"{name}.json", report)
    run = runs[0]
    print(f"\n{name}: {run['nodes']:,} nodes, {run['edges']:,} edges; filtered ranking of "
          f"{run['evaluated_edges']:,} of {run['test_edges']:,} test edges; seeds {seeds}; "
          f"low = query training in-degree <= {params['evaluate']['low_degree_max']}; "
          f"{compute:.0f} s of compute")
    if tuned:
        print(f"tuned ({tuned['trials'].get('complete', 0)} trials on seed {seeds[0]}'s validation edges): "
              f"{tuned['overrides']}")
    print(summary_frame(report["summary"], SUMMARY_KEYS).to_string(index=False))
    print(json.dumps({"report": str(REPORT_DIR / f"{name}.json")}))
    return report


def main(params: dict[str, Any], args: argparse.Namespace) -> dict[str, Any] | None:
    name, params = settings(params, args)
    config = section(params, "compare")  # after settings(): a graph's own seeds replace compare.seeds
    variants = args.variants or list(config["variants"])
    for variant in variants:
        get_variant(variant)  # a typo fails before any work
    seeds = [int(seed) for seed in config["seeds"]]
    chosen = args.seeds or seeds
    steps = [args.step] if getattr(args, "step", None) else list(STEPS)
    if "tune" in steps:
        tune_graph(name, params, chosen[0], str(config["mlflow_experiment"]))
    if "seed" in steps:
        tuned = load_tuned(name)
        for seed in chosen:
            run_seed(name, params, tuned, variants, list(config["tuned_variants"]), seed)
    if "summary" in steps:
        return summarise_graph(name, params, chosen)
    return None
