"""BLADE against its ablation w/o LA (variant no_adaptive, fixed fan-out), paired by
split, from the comparison results `dvc repro reports/dvc.yaml` writes
(`reports/compare/GRAPH.json`): validation MRR@10 with the walk channel (what training selects
on) and of the embeddings alone (both from the channel's fit, on the same validation edges),
and test MRR@10 (reported, not used to choose). Mean difference w/o LA minus BLADE ± its
standard error, and on how many splits w/o LA is ahead.

    python docs/experiments/adaptive_paired.py amazon0302 cora_ml citeseer scalefree
"""
import json
import statistics
import sys


def summary(differences: list[float]) -> str:
    error = statistics.stdev(differences) / len(differences) ** 0.5
    ahead = sum(difference > 0 for difference in differences)
    return f"{statistics.mean(differences):+.4f} ± {error:.4f} ({ahead}/{len(differences)} ahead)"


def validation(method: dict, key: str) -> float:
    channel = method.get("walk_channel") or {}
    return channel.get(key, method["best_val_mrr@10"])


print("graph | validation, with the channel | validation, embeddings alone | test")
for graph in sys.argv[1:]:
    runs = json.load(open(f"reports/compare/{graph}.json"))["runs"]
    pairs = [(run["methods"]["no_adaptive"], run["methods"]["blade"]) for run in runs]
    columns = (
        [validation(a, "val_mrr@10") - validation(b, "val_mrr@10") for a, b in pairs],
        [validation(a, "val_mrr@10_without") - validation(b, "val_mrr@10_without") for a, b in pairs],
        [a["overall"]["mrr@10"] - b["overall"]["mrr@10"] for a, b in pairs],
    )
    print(f"{graph} | " + " | ".join(summary(column) for column in columns))
