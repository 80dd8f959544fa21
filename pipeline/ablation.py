"""``blade ablate``: one training per model choice, on the validation edges of the ingested graph.

    blade ablate --dataset amazon0302            # every row of params.yaml `ablation.rows`
    blade ablate --dataset cora_ml --rows ours "no similarity channel"
    blade ablate --edges my_edges.csv --name mine
    blade ablate --dataset cora_ml --rows "similarity loss" --seeds 43 44 45   # + ours, other splits

The graph is ingested as ``blade compare`` does (its ``compare.datasets`` settings, the first of
``compare.seeds`` for the split) into ``outputs/ablation/<name>/``. Each row is a set of overrides
of ``params.yaml`` (``ours`` = the file as it is; a ``variant`` key picks another model, e.g.
``sage``). Every row trains from the same split,
with the same seed, until early stopping, on ``params.yaml``'s values (no tuned values: the rows
differ in exactly their overrides), and records the validation MRR@10 / HR@10 of its best epoch,
the untrained model's, the curve per epoch and its time. The co-occurrence and popularity
baselines are ranked on the same validation edges. Nothing here looks at test edges.

Resuming: ``reports/ablation/<dataset>.json`` keeps finished rows, each stamped with a digest of
its settings, the data and the model code; a re-run trains only rows whose stamp changed.
Budget: ``ablation.timeout_seconds`` (or ``--timeout-seconds``) stops starting rows after that much
training, in the listed order, so a big graph on a small machine fills its table over several
runs; the rows still to train are recorded as ``pending`` and the report names them.
``blade report`` turns the file into the ablation table and the training-curve figure of
``docs/report.md``.

Seeds: one split says little on a small graph. ``--seeds`` trains the chosen rows and ``ours`` again
on other splits, into ``reports/ablation/seeds/<name>-<seed>.json`` (resumable the same way; the
budget counts per seed), and the report gives each row's difference from ours paired by seed.
"""

from __future__ import annotations

import argparse
import hashlib
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
from pipeline.artifacts import load_split_graph
from pipeline.config import ConfigError, section, with_values
from pipeline.settings import check_params, typed
from pipeline.storage import write_json
from pipeline.train import build_module, fingerprint, fit_variant

log = logging.getLogger(__name__)

REPORT_DIR = Path("reports/ablation")
SEEDS_DIR = REPORT_DIR / "seeds"  # `--seeds`: the rows again on other splits, one file per seed


WORK_DIR = Path("outputs/ablation")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--dataset", help="a graph listed under compare.datasets in params.yaml")
    source.add_argument("--edges", help="any edge list `blade ingest` reads (then give --name)")
    parser.add_argument("--name", help="report name for --edges (default: the file's stem)")
    parser.add_argument("--rows", nargs="+", help="row names of ablation.rows (default: all)")
    parser.add_argument("--timeout-seconds", type=float, metavar="SECONDS",
                        help="no new row starts after this much training (default: "
                             "ablation.timeout_seconds; 0: train every row)")
    parser.add_argument("--seeds", type=int, nargs="+", metavar="SEED",
                        help="repeat the rows (and ours) on these split seeds, each into "
                             "reports/ablation/seeds/<name>-<seed>.json; the report pairs every row "
                             "with ours seed by seed (default: only the first of compare.seeds, "
                             "into reports/ablation/<name>.json)")


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


def file_digest(path: str | Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def main(params: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
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
    given = getattr(args, "timeout_seconds", None)
    timeout = settings.timeout_seconds if given is None else (given or None)  # --timeout-seconds 0: none
    repeats = getattr(args, "seeds", None)
    if not repeats:
        seed = int(section(params, "compare")["seeds"][0])
        return ablate_seed(params, rows, chosen, name, seed, REPORT_DIR / f"{name}.json", WORK_DIR / name,
                           timeout)
    chosen = chosen if "ours" in chosen else ["ours", *chosen]  # each seed's rows pair with its ours
    return {"dataset": name, "seeds": {
        seed: ablate_seed(params, rows, chosen, name, seed, SEEDS_DIR / f"{name}-{seed}.json",
                          WORK_DIR / name / f"seed-{seed}", timeout) for seed in repeats}}


def ablate_seed(params: dict[str, Any], rows: dict[str, Any], chosen: list[str], name: str, seed: int,
                path: Path, directory: Path, timeout: float | None) -> dict[str, Any]:
    """Train the chosen rows on split ``seed`` into ``path`` (rows already there are kept)."""
    stamp_path = directory / "ingest.stamp"
    ingest_stamp = fingerprint(params["ingest"], file_digest(params["ingest"]["edges"]), seed)
    if not stamp_path.is_file() or stamp_path.read_text() != ingest_stamp:
        compare.ingest_seed(params, directory / "ingest", seed)
        stamp_path.write_text(ingest_stamp)
    graph = load_split_graph(directory / "ingest")
    report = json.loads(path.read_text()) if path.is_file() else {}
    report.update({"dataset": name, "seed": seed, "nodes": graph.num_nodes,
                   "train_edges": int(graph.train.shape[1]), "threads": torch.get_num_threads()})
    finished = report.setdefault("rows", {})
    data = [graph.num_nodes, int(graph.train.shape[1]), int(graph.train.sum()), int(graph.val.sum())]
    code = provenance.code_digest()
    settled = {row_name: row_params(params, row_name, overrides) for row_name, overrides in rows.items()}
    stamps = {row_name: fingerprint(variant, row["train"], row["neighbourhood"], seed, data, code)
              for row_name, (variant, row) in settled.items()}
    training_seconds, pending = 0.0, []
    for row_name in chosen:
        variant, row = settled[row_name]
        stamp = stamps[row_name]
        if finished.get(row_name, {}).get("stamp") == stamp:
            log.info("ablate: %s: finished earlier, kept", row_name)
            finished[row_name]["code"] = code  # the stamp holds the code digest: it is this code's
            continue
        if timeout is not None and training_seconds >= timeout:  # timeout > 0: the first row starts
            pending.append(row_name)
            continue
        log.info("ablate: %s: %s %s", row_name, variant, rows[row_name] or "(params.yaml)")
        low_degree_max = int(params["evaluate"]["low_degree_max"])
        baselines_stamp = fingerprint(data, row["train"]["val_queries"], "direction", low_degree_max)
        if report.get("baselines_stamp") != baselines_stamp:
            module = build_module(get_variant(variant), graph, row["neighbourhood"], row["train"], seed)
            report["baselines"] = baselines(graph, module, low_degree_max)
            report["baselines_stamp"] = baselines_stamp
            report["val_edges"] = int(module.validation.edges.shape[1])
            report["val_one_way_edges"] = int(module.validation.one_way.shape[1])
        started = time.perf_counter()
        result = fit_variant(variant, graph, row["neighbourhood"], row["train"], seed, None, progress=False)
        low = trained_scores(graph, result.module, low_degree_max, result.walk_channel)
        finished[row_name] = {
            "stamp": stamp, "code": code, "variant": variant, "overrides": rows[row_name],
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
        }
        training_seconds += time.perf_counter() - started  # unrounded: a tiny graph's row is > 0
        report["pending"] = pending_rows(finished, stamps)
        write_json(path, report)  # after every row: an interrupted run keeps what it finished
        log.info("ablate: %s: best val MRR@10 %.4f at epoch %s of %d (untrained %.4f), %.0f s",
                 row_name, result.best_score, finished[row_name]["best_epoch"], result.epochs,
                 result.untrained_score or float("nan"), finished[row_name]["seconds"])
    if pending:
        log.warning("ablate: %s: %d rows not started (%.0f s of training used, timeout %.0f s): %s; "
                    "the next `blade ablate` trains them", name, len(pending), training_seconds, timeout,
                    ", ".join(pending))
    report["pending"] = pending_rows(finished, stamps)
    report["rows"] = ordered_rows(finished, list(rows))
    write_json(path, report)
    return report


def pending_rows(finished: dict[str, Any], stamps: dict[str, str]) -> list[str]:
    """Rows of ``ablation.rows`` (in order) not trained with their settings and this code yet."""
    return [name for name, stamp in stamps.items() if finished.get(name, {}).get("stamp") != stamp]


def ordered_rows(finished: dict[str, Any], order: list[str]) -> dict[str, Any]:
    """Rows in ``ablation.rows`` order, then rows no longer listed there (kept as they were)."""
    listed = {name: finished[name] for name in order if name in finished}
    return listed | {name: row for name, row in finished.items() if name not in listed}
