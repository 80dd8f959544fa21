"""The numbers of ``blade report``: comparison and ablation results read, and the statistics the
report states (means over seeds, BLADE's relative gain over the best other method, paired
differences between methods and between ablation rows on the same seeds).

Relative gain, the way the paper states "6-230%": for each dataset and metric,
``(BLADE - best other) / best other`` on the means over seeds, where "other" is every method
that is not BLADE or one of its ablations. The ablations get their own line: BLADE's gain over
w/o LA and w/o B.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import ConfigError

BLADE = "blade"

ABLATIONS = ("no_adaptive", "no_bias")

LABELS = {"blade": "BLADE (tuned)", "no_adaptive": "w/o LA", "no_bias": "w/o B", "daemon": "DAEMON",
          "sage": "GraphSAGE (undirected)", "popularity": "popularity", "cooccurrence": "co-occurrence",
          "walk": "walk on A + A^T", "walk_directed": "walk on A", "rp3beta": "RP3beta on A + A^T",
          "rp3beta_directed": "RP3beta on A", "item_knn": "item-kNN"}

METRICS = [f"{kind}@{k}" for kind in ("hit_rate", "mrr") for k in (5, 10, 20)]

SHORT = {"hit_rate": "HR", "mrr": "MRR"}



def short(metric: str) -> str:
    kind, _, k = metric.partition("@")
    return f"{SHORT.get(kind, kind)}@{k}"



def metric_name(metric: str) -> str:
    if metric == "direction_auc":
        return "direction AUC"
    if metric.startswith("low_"):
        return f"low-degree {short(metric[4:])}"
    return short(metric)



def label(method: str) -> str:
    return LABELS.get(method, method)



def load_reports(folder: Path, order: list[str]) -> list[dict[str, Any]]:
    paths = sorted(folder.glob("*.json"))
    if not paths:
        raise FileNotFoundError(f"{folder}: no comparison results; run `blade compare --dataset NAME` first")
    reports = []
    for path in paths:
        try:
            report = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path}: not valid JSON ({error}); re-run `blade compare`") from error
        if "summary" not in report or BLADE not in report["summary"]:
            raise ConfigError(f"{path}: no '{BLADE}' results in its summary; "
                              f"re-run `blade compare` with the {BLADE} variant")
        reports.append(report)
    rank = {name: position for position, name in enumerate(order)}
    return sorted(reports, key=lambda report: (rank.get(report["name"], len(rank)), report["name"]))



def mean(report: dict[str, Any], method: str, metric: str) -> float:
    cell = report["summary"].get(method, {}).get(metric)
    return float(cell["mean"]) if cell else float("nan")



def others(report: dict[str, Any]) -> list[str]:
    return [method for method in report["summary"] if method != BLADE and method not in ABLATIONS]



def relative_gain(report: dict[str, Any], metric: str,
                  against: list[str] | None = None) -> tuple[float, str]:
    """BLADE's relative gain on ``metric`` over the best of ``against`` (default: every other
    method) and that method's name."""
    candidates = [m for m in (against or others(report)) if np.isfinite(mean(report, m, metric))]
    if not candidates:
        return float("nan"), "-"
    best = max(candidates, key=lambda method: mean(report, method, metric))
    reference = mean(report, best, metric)
    if reference <= 0:
        return float("nan"), best
    return (mean(report, BLADE, metric) - reference) / reference, best



def gain_range(reports: list[dict[str, Any]], prefix: str = "",
               against: str | None = None) -> tuple[float, float]:
    """Smallest and largest relative gain over ``reports`` and the six metrics (``prefix`` low_
    for low-degree queries; ``against`` one method instead of the best other)."""
    gains = []
    for report in reports:
        if against is not None and against not in report["summary"]:
            continue
        for metric in METRICS:
            gain, _ = relative_gain(report, prefix + metric, [against] if against else None)
            if np.isfinite(gain):
                gains.append(gain)
    return (min(gains), max(gains)) if gains else (float("nan"), float("nan"))



def paired_difference(report: dict[str, Any], other: str, metric: str) -> tuple[float, float, int, int]:
    """BLADE minus ``other`` on ``metric`` (all queries), seed by seed: the mean difference, its
    standard error (sample std / sqrt(n); nan for one seed), the seeds BLADE is ahead on, and n."""
    differences = np.array([methods[BLADE]["overall"][metric] - methods[other]["overall"][metric]
                            for methods in (run["methods"] for run in report["runs"])
                            if BLADE in methods and other in methods])
    if differences.size == 0:
        return float("nan"), float("nan"), 0, 0
    error = differences.std(ddof=1) / np.sqrt(differences.size) if differences.size > 1 else float("nan")
    return float(differences.mean()), float(error), int((differences > 0).sum()), int(differences.size)



def bucket_series(report: dict[str, Any], method: str,
                  metric: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Quartile buckets (labels of the first seed) with mean and std over seeds of ``metric``."""
    labels: list[str] = []
    values: dict[str, list[float]] = {}
    for run in report["runs"]:
        result = run["methods"].get(method)
        if result is None:
            continue
        for name, bucket in result["buckets"].items():
            key = name.split(":")[0]
            if key.startswith("low"):
                continue
            if key not in values:
                labels.append(name)
                values[key] = []
            values[key].append(bucket[metric])
    keys = [name.split(":")[0] for name in labels]
    return (labels, np.array([np.mean(values[key]) for key in keys]),
            np.array([np.std(values[key]) for key in keys]))



def load_ablations(folder: Path, order: list[str]) -> list[dict[str, Any]]:
    """``blade ablate`` results, in ``compare.datasets`` order (none is fine: no section)."""
    ablations = [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]
    for ablation in ablations:  # `blade ablate --seeds`: the same rows on other splits
        ablation["repeats"] = [json.loads(path.read_text())
                               for path in sorted((folder / "seeds").glob(f"{ablation['dataset']}-*.json"))]
    rank = {name: position for position, name in enumerate(order)}
    return sorted(ablations, key=lambda item: (rank.get(item["dataset"], len(rank)), item["dataset"]))



def code_version(row: dict[str, Any]) -> str | None:
    """What identifies the code a row trained with: its git commit (earlier rows: a digest of
    the source tree)."""
    return row.get("git_commit") or row.get("code")


# What a trained row depends on: the model and pipeline code, less the report's own files (the
# report stage alone reads them, so editing them changes no result).
CODE_PATHS = ("models", "pipeline", ":(exclude)pipeline/report*")


@functools.cache
def _code_differs(first: str, second: str) -> bool:
    """Whether ``models/`` or ``pipeline/`` (less the report's files) differ between two commits
    of this repository (an unknown commit, e.g. in a shallow clone, counts as different)."""
    try:
        result = subprocess.run(["git", "diff", "--quiet", first, second, "--", *CODE_PATHS],
                                capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return True
    return result.returncode != 0


def same_code(row: dict[str, Any], reference: dict[str, Any]) -> bool:
    """Whether ``row`` trained with the code ``reference`` trained with: the same version, or two
    commits between which only results, documents or settings changed."""
    first, second = code_version(row), code_version(reference)
    if first == second:
        return True
    commits = [value for value in (first, second) if value and re.fullmatch(r"[0-9a-f]{40}", value)]
    return len(commits) == 2 and not _code_differs(*commits)


def seed_differences(ablation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each row minus ours on the same split, over the main seed and the ``--seeds`` repeats
    (rows trained with other code than that split's ours left out): per row the seeds, the val
    MRR@10 differences and the direction AUC differences."""
    by_seed = {}
    for report in [*ablation.get("repeats", []), ablation]:  # the main table wins a shared seed
        reference = report["rows"].get("ours", {})
        by_seed[report["seed"]] = {name: row for name, row in report["rows"].items()
                                   if same_code(row, reference)}
    out: dict[str, dict[str, Any]] = {}
    for seed, rows in sorted(by_seed.items()):
        ours = rows.get("ours")
        for name, row in rows.items():
            if ours is None or name == "ours":
                continue
            entry = out.setdefault(name, {"seeds": [], "mrr": [], "auc": []})
            entry["seeds"].append(seed)
            entry["mrr"].append(row["best_val_mrr@10"] - ours["best_val_mrr@10"])
            if row.get("val_direction_auc") is not None and ours.get("val_direction_auc") is not None:
                entry["auc"].append(row["val_direction_auc"] - ours["val_direction_auc"])
    return out



SWEEP_DIR = Path("reports/gpu")



def load_sweeps(folder: Path) -> list[dict[str, Any]]:
    """``bench/sweep.py`` results kept as ``<folder>/sweep-<dataset>-<machine>.json`` (none: no section)."""
    paths = sorted(folder.glob("sweep-*.json"))
    return [json.loads(path.read_text()) | {"file": str(path)} for path in paths]
