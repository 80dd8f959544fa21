"""The Markdown pieces of ``blade report``: per-graph metric tables with the subset split and
paired differences, the setup, tuned-parameter, training, runtime and ablation tables, and the
list of places where BLADE is not first. Each returns lines; :func:`pipeline.report.render`
puts them in order."""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.report_stats import (
    ABLATIONS,
    BLADE,
    METRICS,
    gain_range,
    label,
    mean,
    metric_name,
    paired_difference,
    relative_gain,
    same_code,
    seed_differences,
    short,
)

GLOBAL = ["global_auc", "global_hits@20", "global_hits@50", "global_hits@100"]


TUNED_KEYS = ["alpha_multiplier", "d_min", "n_min", "n_max", "h_max", "beta", "learning_rate", "dim"]


def cell(report: dict[str, Any], method: str, metric: str, best: bool = False) -> str:
    value = report["summary"].get(method, {}).get(metric)
    if value is None or not np.isfinite(value["mean"]):
        return "-"
    text = f"{value['mean']:.4f}"
    if value["n"] > 1:
        text += f" ± {value['std']:.4f}"
    return f"**{text}**" if best else text


def percent(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{value * 100:+.1f}%"


def metrics_table(report: dict[str, Any], prefix: str) -> list[str]:
    columns = [prefix + metric for metric in METRICS] + ([] if prefix else ["direction_auc"])
    header = ["method"] + [short(metric) for metric in METRICS] + ([] if prefix else ["direction AUC"])
    if prefix == "global_":
        columns = GLOBAL
        header = ["method", "AUC", "Hits@20", "Hits@50", "Hits@100"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    best = {column: max(np.nan_to_num(mean(report, m, column), nan=-1) for m in report["summary"])
            for column in columns}  # every method at the best value is bold (ties)
    for method in report["summary"]:
        row = [label(method)] + [cell(report, method, column, mean(report, method, column) == best[column])
                                 for column in columns]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def subset_lines(report: dict[str, Any]) -> list[str]:
    """The two subsets and the global link metric, where the results have them."""
    if not any(key.startswith("rev_") for values in report["summary"].values() for key in values):
        return []
    return (["Test edges q -> v whose reverse v -> q is a training edge:", ""] + metrics_table(report, "rev_")
            + ["", "The other test edges (reverse not in training):", ""] + metrics_table(report, "oth_")
            + ["", "Global link metric: every ranked test edge against one seeded pool of "
               f"{report.get('evaluate', {}).get('non_edges', 'the')} uniform non-edges (OGB's Hits@K: "
               "the share of edges above the K-th best non-edge), with the direction calibration "
               "each method got:", ""] + metrics_table(report, "global_") + [""])


def paired_lines(report: dict[str, Any]) -> list[str]:
    """BLADE against DAEMON seed by seed: each seed is its own split, so the paired difference
    tells a real gap from the spread between splits."""
    parts = []
    for metric in ("hit_rate@10", "mrr@10"):
        difference, error, ahead, seeds = paired_difference(report, "daemon", metric)
        if seeds:
            parts.append(f"{short(metric)} {difference:+.4f}" + ("" if np.isnan(error) else f" ± {error:.4f}")
                         + f", ahead on {ahead} of {seeds} seeds")
    return [f"- BLADE minus DAEMON, paired by seed (± standard error): {'; '.join(parts)}."] if parts else []


def gain_lines(report: dict[str, Any]) -> list[str]:
    lines = []
    for title, prefix in (("all queries", ""), ("low-degree queries", "low_")):
        parts = []
        for metric in ("hit_rate@10", "mrr@10"):
            gain, best = relative_gain(report, prefix + metric)
            parts.append(f"{short(metric)} {percent(gain)} over {label(best)}")
        low, high = gain_range([report], prefix)
        lines.append(f"- BLADE's relative gain, {title}: {'; '.join(parts)} "
                     f"(all six metrics: {percent(low)} to {percent(high)}).")
    for ablation in ABLATIONS:
        if ablation in report["summary"]:
            low, high = gain_range([report], "", ablation)
            lines.append(f"- Over its ablation {label(ablation)}: {percent(low)} to {percent(high)} "
                         f"across the six metrics.")
    return lines + paired_lines(report)


def setup_table(reports: list[dict[str, Any]]) -> list[str]:
    lines = ["| dataset | nodes | edges | split train/val/test | seeds | test queries ranked per seed "
             "| tuning | compute time |", "|" + " --- |" * 8]
    for report in reports:
        run = report["runs"][0]
        split = report.get("split", {})
        sampled = (f"{run['evaluated_edges']:,} of {run['test_edges']:,} (seeded sample)"
                   if run["evaluated_edges"] < run["test_edges"] else f"all {run['test_edges']:,}")
        tuned = report.get("tuned") or {}
        trials = tuned.get("trials", {})
        tuning = (f"{trials.get('complete', 0)} complete + {trials.get('pruned', 0)} pruned trials, "
                  f"{tuned['seconds']:.0f} s" if tuned else "none (params.yaml values)")
        lines.append(f"| {report['name']} | {run['nodes']:,} | {run['edges']:,} | "
                     f"{split.get('train')}/{split.get('val')}/{split.get('test')} | "
                     f"{', '.join(str(s) for s in report['seeds'])} | {sampled} | {tuning} | "
                     f"{report['compute_seconds'] / 60:.1f} min |")
    return lines


def tuned_table(reports: list[dict[str, Any]]) -> list[str]:
    header = ["dataset"] + TUNED_KEYS + ["alpha_hat", "alpha used", "val MRR@10 tuned",
                                        "val MRR@10 params.yaml"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for report in reports:
        tuned = report.get("tuned") or {}
        values = {key.split(".")[-1]: value for key, value in tuned.get("overrides", {}).items()}
        fixed = dict(report["neighbourhood"], learning_rate=report["train"].get("learning_rate"),
                     dim=report["train"].get("dim"))
        row = [report["name"]]
        for key in TUNED_KEYS:
            value = values.get(key, fixed.get(key))
            row.append(f"{value:.3g}" if isinstance(value, float) else str(value))
        power = report["runs"][0]["power_law"]
        row += [f"{power['alpha_hat']:.3f}", f"{power['alpha_used']:.3f}",
                f"{tuned['best_val_mrr@10']:.4f}" if tuned else "-",
                f"{tuned['default_val_mrr@10']:.4f}" if tuned.get("default_val_mrr@10") is not None else "-"]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def training_table(reports: list[dict[str, Any]]) -> list[str]:
    """Per trained method and seed: epochs run (early stopping) and best validation MRR@10."""
    lines = ["| dataset | method | epochs per seed | best val MRR@10 per seed | test MRR@10 per seed |",
             "|" + " --- |" * 5]
    for report in reports:
        for method in report["summary"]:
            runs = [run["methods"][method] for run in report["runs"] if method in run["methods"]]
            if not runs or "epochs" not in runs[0]:
                continue
            epochs = ", ".join(str(run["epochs"]) for run in runs)
            val = ", ".join(f"{run['best_val_mrr@10']:.4f}" for run in runs)
            test = ", ".join(f"{run['overall']['mrr@10']:.4f}" for run in runs)
            lines.append(f"| {report['name']} | {label(method)} | {epochs} | {val} | {test} |")
    return lines


def disagreements(reports: list[dict[str, Any]]) -> list[str]:
    """Generated from the numbers: every dataset and headline metric where BLADE is not first."""
    lines = []
    for report in reports:
        for metric in ("hit_rate@10", "mrr@10", "low_hit_rate@10", "low_mrr@10", "direction_auc"):
            rivals = [m for m in report["summary"] if m != BLADE]
            best = max(rivals, key=lambda m: np.nan_to_num(mean(report, m, metric), nan=-1))
            ours, theirs = mean(report, BLADE, metric), mean(report, best, metric)
            if theirs > ours:
                lines.append(f"- {report['name']}, {metric_name(metric)}: "
                             f"{label(best)} {theirs:.4f} beats BLADE {ours:.4f}.")
    return lines or ["- None: BLADE is first on every dataset and headline metric."]


def environment_lines(reports: list[dict[str, Any]]) -> list[str]:
    env = reports[0].get("environment", {})
    packages = env.get("packages", {})
    return [
        f"- CPU: {env.get('cpu', '?')}, {env.get('cpu_count', '?')} cores, "
        f"{env.get('memory_gib', '?')} GiB RAM, GPU: {env.get('gpu') or 'none'}; "
        f"torch threads {env.get('torch_threads', '?')}.",
        f"- Python {env.get('python', '?')}, torch {packages.get('torch', '?')}, "
        f"pytorch-lightning {packages.get('pytorch-lightning', '?')}, optuna {packages.get('optuna', '?')}.",
        "- Code, per graph (the commit its comparison ran at): " + ", ".join(
            f"{report['name']} {report.get('environment', {}).get('git_commit', 'unknown')[:10]}"
            for report in reports) + f"; data: DVC {env.get('data_version', '?')}.",
        "- Compute time per dataset (tuning + every seed's training and evaluation): "
        + "; ".join(f"{report['name']} {report['compute_seconds'] / 60:.1f} min" for report in reports) + ".",
    ]


def overrides_text(row: dict[str, Any]) -> str:
    items = [f"{key.split('.')[-1]}={value}" for key, value in row["overrides"].items()]
    return ", ".join(items) or "params.yaml"


def ablation_table(ablation: dict[str, Any]) -> list[str]:
    """The rows of one dataset; rows trained with other code than ours are marked."""
    rows = ablation["rows"]
    ours = rows.get("ours", {}).get("best_val_mrr@10")
    stale = [name for name, row in rows.items() if not same_code(row, rows.get("ours", {}))]
    lines = ["| row | changes | val MRR@10 | vs ours | with walk channel | untrained | low-degree val MRR@10 "
             "| val direction AUC | best epoch / epochs | s / epoch | time |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, row in rows.items():
        best = row["best_val_mrr@10"]
        delta = "" if ours is None or name == "ours" else f"{best - ours:+.4f}"
        untrained = row.get("untrained_val_mrr@10")
        shown = f"{name} (other code)" if name in stale else name
        lines.append(
            f"| {shown} | {overrides_text(row)} | {'**' if name == 'ours' else ''}{best:.4f}"
            f"{'**' if name == 'ours' else ''} | {delta} | {_optional(row.get('val_mrr@10_scored'))} | "
            f"{_optional(untrained)} | {_optional(row.get('val_low_mrr@10'))} | "
            f"{_optional(row.get('val_direction_auc'))} | "
            f"{row['best_epoch']} / {row['epochs']} | "
            f"{row['seconds_per_epoch']:.1f} | {row['seconds'] / 60:.1f} min |")
    baselines = ablation.get("baselines", {})
    lines += ["", "Baselines on the same validation edges: " + "; ".join(
        f"{label(name)} MRR@10 {values['val_mrr@10']:.4f} (HR@10 {values['val_hit_rate@10']:.4f}"
        + (f", low-degree MRR@10 {values['val_low_mrr@10']:.4f}" if "val_low_mrr@10" in values else "")
        + (f", direction AUC {values['val_direction_auc']:.4f}" if values.get("val_direction_auc") else "")
        + ")" for name, values in baselines.items()) + "."]
    if stale:
        lines += ["", f"{len(stale)} of {len(rows)} rows were trained with other code than ours (marked "
                  "\"other code\"); compare them with care. `dvc status reports/dvc.yaml` names the rows "
                  "an edit made stale."]
    missing = [name for name in ablation.get("pending", []) if name not in rows]
    if missing:
        lines += ["", f"Not trained yet ({len(missing)} rows; `dvc repro reports/dvc.yaml` trains each as a "
                  f"stage of its own): {', '.join(missing)}."]
    return lines


def _optional(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def seed_lines(ablation: dict[str, Any]) -> list[str]:
    """Rows repeated on several splits (`blade ablate --seeds`): their difference from ours,
    paired by seed, so a row's gain can be told from the spread between splits."""
    repeated = {name: entry for name, entry in seed_differences(ablation).items()
                if len(entry["seeds"]) > 1}
    if not repeated:
        return []
    lines = ["", f"Rows repeated over seeds (`blade ablate --dataset {ablation['dataset']} --seeds ...`), "
             "each minus ours on the same split (mean ± standard error):", "",
             "| row | seeds | val MRR@10 vs ours | ahead on | val direction AUC vs ours |",
             "| --- | --- | --- | --- | --- |"]
    for name, entry in repeated.items():
        mrr = np.array(entry["mrr"])
        auc = f"{np.mean(entry['auc']):+.4f}" if entry["auc"] else ""
        error = mrr.std(ddof=1) / np.sqrt(mrr.size)
        lines.append(f"| {name} | {', '.join(map(str, entry['seeds']))} | {mrr.mean():+.4f} ± {error:.4f} | "
                     f"{int((mrr > 0).sum())} of {mrr.size} | {auc} |")
    return lines


def ablation_lines(ablations: list[dict[str, Any]], images: str) -> list[str]:
    if not ablations:
        return []
    lines = ["## Training curves and ablations", "",
             "Generated from `reports/ablation/<dataset>.json` (`blade ablate --dataset NAME`). Each row "
             "trains BLADE (or the named variant) once with params.yaml's values plus the row's "
             "changes, untuned, on the first seed's split, until early stopping, and reports the best "
             "epoch's validation MRR@10 (5,000 sampled validation edges at most; test edges are never "
             "used). \"untrained\" is the model before its first step. Rows that did not help are "
             "kept.", "",
             "\"DAEMON as published\" sets the DAEMON paper's settings as far as flags reach (method "
             "doc section 7): 3 layers with ReLU and no self term, a random start, the logistic loss "
             "on unscaled scores of unit vectors, reciprocal pairs as the similarity channel with its "
             "loss, learning rate 1e-4, dim 64, at most 30 epochs. It differs from the paper in "
             "full-graph steps instead of mini-batches of 1,024 (an epoch supervises 10% of the training "
             "edges in steps of 32,768: one step on the citation graphs and 3 on amazon0302, where "
             "the paper's batches make 4-7 and 905), one fan-out of 20 at every layer "
             "instead of 20 then 10, a softmax similarity loss, and 5 uniform negatives per edge written "
             "log sigma(-x) instead of log sigma(1 - x) (the paper does not say how many). "
             "Its second row changes only the learning rate.", "",
             f"![validation MRR@10 per epoch]({images}/training_curves.png)", ""]
    for ablation in ablations:
        lines += [f"### {ablation['dataset']} (seed {ablation['seed']}, {ablation.get('val_edges', '?')} "
                  f"validation edges, {ablation.get('threads', '?')} threads)", ""]
        lines += ablation_table(ablation) + seed_lines(ablation) + [""]
    return lines


def sweep_lines(sweeps: list[dict[str, Any]]) -> list[str]:
    if not sweeps:
        return []
    lines = ["### Exploratory sweeps (`bench/sweep.py`)", "",
             "Rows tried on a borrowed GPU before they became ablation rows: one training each, "
             "params.yaml's values of the commit named plus the row's change, validation edges only "
             "(scored as `blade ablate` scores them). Their commands are in the file.", ""]
    for sweep in sweeps:
        lines += [f"`{sweep['file']}`: {sweep.get('machine', sweep.get('device', '?'))}, commit "
                  f"{sweep.get('commit', '?')}, seed {sweep['seed']}", "",
                  "| row | changes | val MRR@10 | val HR@10 | low-degree val MRR@10 | low-degree val HR@10 "
                  "| untrained | epochs |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for name, row in sweep["rows"].items():
            changes = ", ".join(f"{key.split('.')[-1]}={value}" for key, value in
                                (({"variant": row["variant"]} if row["variant"] != "blade" else {})
                                 | row["overrides"]).items()) or "params.yaml"
            lines.append(f"| {name} | {changes} | {row['val_mrr@10']:.4f} | {row['val_hit_rate@10']:.4f} | "
                         f"{row['val_low_mrr@10']:.4f} | {row['val_low_hit_rate@10']:.4f} | "
                         f"{row['untrained_val_mrr@10']:.4f} | {row['epochs']} |")
        lines.append("")
    return lines
