"""The figures of ``blade report``: HitRate@10 by query in-degree, the overall metrics per method,
and the ablation's training curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.report_stats import ABLATIONS, BLADE, bucket_series, label, mean
from pipeline.storage import pyplot, save_figure


def plot_buckets(reports: list[dict[str, Any]], path: Path) -> None:
    plt = pyplot()
    figure, axes = plt.subplots(1, len(reports), figsize=(5.2 * len(reports), 4.2), dpi=110, squeeze=False)
    for axis, report in zip(axes[0], reports):
        for method in report["summary"]:
            names, means, stds = bucket_series(report, method, "hit_rate@10")
            axis.errorbar(range(len(names)), means, yerr=stds, marker="o", capsize=3,
                          linewidth=2.4 if method == BLADE else 1.2, label=label(method))
            axis.set_xticks(range(len(names)), [name.split(": ")[-1] for name in names], rotation=15)
        axis.set_title(f"{report['name']} ({len(report['seeds'])} seeds)")
        axis.set_xlabel("query in-degree (training graph), quartile buckets")
        axis.set_ylabel("HitRate@10 (filtered), mean ± std")
        axis.grid(True, alpha=0.3)
    axes[0][0].legend(fontsize=8)
    figure.tight_layout()
    save_figure(figure, path)



def plot_overall(reports: list[dict[str, Any]], path: Path) -> None:
    plt = pyplot()
    rows = [("hit_rate@10", "HitRate@10"), ("low_hit_rate@10", "HitRate@10, in-degree <= 2"),
            ("mrr@10", "MRR@10")]
    figure, axes = plt.subplots(len(rows), len(reports), figsize=(5.2 * len(reports), 3.2 * len(rows)),
                                dpi=110, squeeze=False)
    for column, report in enumerate(reports):
        methods = list(report["summary"])
        for row, (metric, title) in enumerate(rows):
            axis = axes[row][column]
            means = [mean(report, m, metric) for m in methods]
            stds = [report["summary"][m].get(metric, {}).get("std", 0.0) for m in methods]
            colours = ["tab:red" if m == BLADE else "tab:gray" if m in ABLATIONS else "tab:blue"
                       for m in methods]
            axis.bar(range(len(methods)), np.nan_to_num(means), yerr=stds, color=colours, capsize=3)
            axis.set_xticks(range(len(methods)), [label(m) for m in methods], rotation=35, ha="right",
                            fontsize=8)
            axis.set_title(f"{report['name']}: {title}")
            axis.grid(True, axis="y", alpha=0.3)
    figure.tight_layout()
    save_figure(figure, path)



CURVE_ROWS = ("ours", "random start", "GraphSAGE", "GraphSAGE, random start", "mini-batch training (before)")



def plot_curves(ablations: list[dict[str, Any]], path: Path) -> None:
    """Validation MRR@10 per epoch (epoch 0 = the untrained model) of the curve rows."""
    plt = pyplot()
    figure, axes = plt.subplots(1, len(ablations), figsize=(6.0 * len(ablations), 4.4), dpi=110,
                                squeeze=False)
    for axis, ablation in zip(axes[0], ablations):
        for name in CURVE_ROWS:
            row = ablation["rows"].get(name)
            if row is None:
                continue
            start = row.get("untrained_val_mrr@10")
            curve = ([start] if start is not None else [np.nan]) + row["val_mrr@10_curve"]
            axis.plot(range(len(curve)), curve, marker="o", markersize=3,
                      linewidth=2.4 if name == "ours" else 1.2,
                      linestyle="--" if "random start" in name else "-", label=f"{name} ({row['variant']})")
        cooccurrence = ablation.get("baselines", {}).get("cooccurrence")
        if cooccurrence:
            axis.axhline(cooccurrence["val_mrr@10"], color="gray", linestyle=":", label="co-occurrence")
        axis.set_title(f"{ablation['dataset']}: validation MRR@10 per epoch (seed {ablation['seed']})")
        axis.set_xlabel("epoch (0 = untrained)")
        axis.set_ylabel(f"MRR@10 on {ablation.get('val_edges', '?'):,} validation edges")
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    save_figure(figure, path)
