"""``blade summary``: what a finished ``dvc repro`` produced, in a screen of at most 100 columns.

    blade summary                 # the end of `make run`
    blade summary --width 80

It reads only the stages' outputs (``metrics/*.json`` and ``outputs/tune/best_params.json``):
the tuning study and the values it chose, test HitRate@10 / MRR@10 overall and for low-degree
queries with direction AUC for every method, the registered model and its alias, and the batch
scoring throughput with where the recommendations are. A stage that has not run yet is named
instead of its section. ``dvc metrics show`` still has every number.
"""

from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path
from typing import Any

METRICS_DIR = Path("metrics")
BEST_PARAMS = Path("outputs/tune/best_params.json")
WIDTH = 100

# params.yaml key -> the short label shown for a tuned value
SHORT_NAMES = {"neighbourhood.alpha_multiplier": "alpha x", "neighbourhood.d_min": "d_min",
               "neighbourhood.n_min": "n_min", "neighbourhood.n_max": "n_max",
               "neighbourhood.h_max": "h_max", "neighbourhood.beta": "beta",
               "train.learning_rate": "lr", "train.dim": "dim"}
METHOD_LABELS = {"blade": "BLADE", "sage": "GraphSAGE", "popularity": "popularity",
                 "cooccurrence": "2-hop co-occurrence", "walk": "walk on A + A^T",
                 "walk_directed": "walk on A", "rp3beta": "RP3beta on A + A^T",
                 "rp3beta_directed": "RP3beta on A", "item_knn": "item-kNN"}
TRAINED = ("blade", "no_adaptive", "no_bias", "daemon", "sage")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--width", type=int, default=WIDTH, help="widest line (default: %(default)s)")


def _read(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def tuning_lines(tune: dict[str, Any] | None, best: dict[str, Any] | None) -> list[str]:
    if tune is None:
        return ["Tuning: not run yet (dvc repro tune)"]
    lines = [f"Tuning: {tune['trials_complete']} trials complete, {tune['trials_pruned']} pruned, "
             f"{tune.get('trials_failed', 0)} failed in {tune['seconds'] / 60:.1f} min; chosen trial "
             f"{tune['best_trial']} (validation MRR@10 {tune['best_val_mrr@10']:.4f})"]
    if best is not None:
        lines.append(f"  study {best['study']}")
        values = [f"{SHORT_NAMES.get(key, key.split('.')[-1])} {_number(value)}"
                  for key, value in best.get("overrides", {}).items()]
        lines.append("  chosen: " + ", ".join(values))
    return lines


def ranking_lines(evaluate: dict[str, Any] | None) -> list[str]:
    if evaluate is None:
        return ["Test ranking: not run yet (dvc repro evaluate)"]
    low_bucket = next((key for result in evaluate["methods"].values()
                       for key in result.get("buckets", {}) if key.startswith("low")), "low")
    lines = [f"Test ranking on {evaluate['dataset']}: {evaluate['evaluated_edges']:,} of "
             f"{evaluate['split_edges']:,} {evaluate['split']} edges, seed {evaluate['seed']}, "
             f"filtered; {low_bucket.replace(':', ' =')} (training in-degree)",
             f"  {'method':<20} {'HR@10':>6} {'MRR@10':>6} {'low HR':>6} {'low MRR':>7} "
             f"{'rev MRR':>7} {'oth MRR':>7} {'dir AUC':>7} {'Hits@50':>7}"]
    nan = float("nan")
    for name, result in evaluate["methods"].items():
        overall = result["overall"]
        low = next((bucket for key, bucket in result.get("buckets", {}).items() if key.startswith("low")),
                   {})
        subsets = list(result.get("subsets", {}).values()) or [{}, {}]
        auc = result.get("direction_auc")
        lines.append(f"  {METHOD_LABELS.get(name, name):<20} {overall['hit_rate@10']:>6.4f} "
                     f"{overall['mrr@10']:>6.4f} {low.get('hit_rate@10', nan):>6.4f} "
                     f"{low.get('mrr@10', nan):>7.4f} {subsets[0].get('mrr@10', nan):>7.4f} "
                     f"{subsets[1].get('mrr@10', nan):>7.4f} "
                     f"{'' if auc is None else f'{auc:.4f}':>7} "
                     f"{result.get('global', {}).get('hits@50', nan):>7.4f}")
    baselines = {name: result["overall"]["mrr@10"] for name, result in evaluate["methods"].items()
                 if name not in TRAINED}
    if "blade" in evaluate["methods"] and baselines:
        best = max(baselines, key=baselines.get)
        ours = evaluate["methods"]["blade"]["overall"]["mrr@10"]
        lines.append(f"  best baseline: {METHOD_LABELS.get(best, best)} (MRR@10 {baselines[best]:.4f}); "
                     f"BLADE {100 * (ours / baselines[best] - 1):+.1f}%")
    lines.append("  rev: test edges whose reverse is a training edge; oth: the others; Hits@50: "
                 "against one pool of uniform non-edges")
    return lines


def registry_lines(register: dict[str, Any] | None) -> list[str]:
    if register is None:
        return ["Registry: not run yet (dvc repro register)"]
    alias = "alias champion" if register["champion"] else "not champion"
    return [f"Registry: {register['model_uri']} ({alias}): {register['reason']}"]


def scoring_lines(score: dict[str, Any] | None) -> list[str]:
    if score is None:
        return ["Scoring: not run yet (dvc repro score)"]
    return [f"Scoring: {score['scored']:,} queries, top-{score['k']} each, "
            f"{score['queries_per_second']:,.0f} queries/s ({', '.join(score['providers'])}, "
            f"{score['index']} index) from {score['model']}",
            f"  recommendations: {score['output']}"]


def summary(metrics_dir: Path = METRICS_DIR, best_params: Path = BEST_PARAMS,
            width: int = WIDTH) -> str:
    read = {name: _read(metrics_dir / f"{name}.json")
            for name in ("ingest", "tune", "train", "evaluate", "register", "score")}
    ingest = read["ingest"]
    head = ("Graph: not ingested yet (dvc repro ingest)" if ingest is None else
            f"Graph: {ingest['source_file']}: {ingest['nodes']:,} products, {ingest['edges']:,} edges "
            f"(train {ingest['train_edges']:,} / val {ingest['val_edges']:,} / "
            f"test {ingest['test_edges']:,})")
    trained = ", ".join(f"{METHOD_LABELS.get(name, name)} {values['epochs']} epochs "
                        f"(best val MRR@10 {values['best_val_mrr@10']:.4f})"
                        for name, values in (read["train"] or {}).items())
    sections = [[head], tuning_lines(read["tune"], _read(best_params)),
                [f"Training: {trained}" if trained else "Training: not run yet (dvc repro train)"],
                ranking_lines(read["evaluate"]), registry_lines(read["register"]),
                scoring_lines(read["score"]),
                ["Every number: dvc metrics show; runs and models: make ui (http://127.0.0.1:5000)"]]
    lines: list[str] = []
    for line in (line for section in sections for line in section):
        indent = " " * (len(line) - len(line.lstrip()) + 2)
        lines += textwrap.wrap(line, width=width, subsequent_indent=indent, break_on_hyphens=False)
    return "\n".join(lines)


def main(params: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    del params  # the summary reads the stages' outputs, not their parameters
    print(summary(width=getattr(args, "width", WIDTH)))
    return {}
