"""Validation sweep: one training per row of overrides, in one run on one machine, scored on the
validation edges overall and for low-degree queries, as ``blade ablate`` scores its rows.

    python bench/sweep.py                                  # the built-in rows below, amazon0302
    python bench/sweep.py --row 'beta 0:neighbourhood.beta=0' --row 'sage:variant=sage'
    python bench/sweep.py --device cuda --json sweep.json  # on a GPU machine

Like ``bench/gpu_check.py`` it needs only the model library's packages (no MLflow, DVC, Optuna,
pydantic), so a borrowed GPU machine can run many rows in the time two CPU cores run one. It
is for exploring: every row it finds worth keeping goes into ``ablation.rows`` of params.yaml,
and the report's numbers come from ``blade ablate`` there. Validation edges only, never test.

Each row is ``NAME:key=value,key=value`` with keys ``section.key`` of params.yaml (values in
YAML syntax) or ``variant``. The seed is ``base.seed`` (``--seed`` to change).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.gpu_check import fit, load_graph  # noqa: E402
from models.training import trained_scores  # noqa: E402

ROWS = (  # the low-degree question (docs/report.md): one change from params.yaml per row
    "ours:",
    "GraphSAGE:variant=sage",
    "no neighbour bias (beta 0):neighbourhood.beta=0",
    "no multi-hop top-up (h_max 1):neighbourhood.h_max=1",
    "n_max 20:neighbourhood.n_max=20",
    "score scale 20:train.score_scale=20",
    "reciprocal similarity:train.similarity=reciprocal",
    "one layer:train.num_layers=1",
)


def parse_row(text: str) -> tuple[str, dict]:
    name, _, body = text.partition(":")
    overrides = {}
    for item in filter(None, (part.strip() for part in body.split(","))):
        key, equals, value = item.partition("=")
        if not equals:
            raise SystemExit(f"--row {text!r}: expected key=value, got {item!r}")
        overrides[key.strip()] = yaml.safe_load(value)
    return name.strip(), overrides


def run_row(graph, params: dict, overrides: dict, device: str, seed: int, low_degree_max: int) -> dict:
    overrides = dict(overrides)
    variant = overrides.pop("variant", "blade")
    sections: dict[str, dict] = {"neighbourhood": {}, "train": {}}
    for key, value in overrides.items():
        section, _, name = key.partition(".")
        if section not in sections or name not in params[section]:
            raise SystemExit(f"row override {key!r}: not a key of params.yaml's neighbourhood or train")
        sections[section][name] = value
    started = time.perf_counter()
    result = fit(graph, params, device, seed, variant, **sections)
    scores = trained_scores(graph, result.module, low_degree_max)
    return {"variant": variant, "overrides": overrides, **scores,
            "untrained_val_mrr@10": round(result.untrained_score, 5), "epochs": result.epochs,
            "curve": [round(value, 4) for value in result.curve],
            "seconds": round(time.perf_counter() - started, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--edges", help="edge file (default: ingest.edges of params.yaml)")
    parser.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    parser.add_argument("--row", action="append", help="NAME:key=value,... (default: the built-in rows)")
    parser.add_argument("--seed", type=int, help="default: base.seed")
    parser.add_argument("--json", help="write the results here (after every row)")
    parser.add_argument("--max-nodes", type=int, help="train on nodes 0..N-1 only (a quick test)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    params = yaml.safe_load(Path(args.params).read_text())
    rows = [parse_row(text) for text in (args.row or ROWS)]
    seed = args.seed if args.seed is not None else int(params["base"]["seed"])
    low_degree_max = int(params["evaluate"]["low_degree_max"])
    graph = load_graph(params, args.edges, args.max_nodes)
    print(f"graph: {graph.num_nodes:,} nodes, {graph.train.shape[1]:,} training edges; device {device}; "
          f"seed {seed}; low-degree: query training in-degree <= {low_degree_max}", flush=True)
    print(f"{'row':<40} {'val MRR@10':>10} {'HR@10':>7} {'low MRR@10':>10} {'low HR@10':>9} "
          f"{'untrained':>9} {'epochs':>6} {'s':>6}", flush=True)
    results = {}
    for name, overrides in rows:
        row = run_row(graph, params, overrides, device, seed, low_degree_max)
        results[name] = row
        print(f"{name:<40} {row['val_mrr@10']:>10.4f} {row['val_hit_rate@10']:>7.4f} "
              f"{row['val_low_mrr@10']:>10.4f} {row['val_low_hit_rate@10']:>9.4f} "
              f"{row['untrained_val_mrr@10']:>9.4f} {row['epochs']:>6d} {row['seconds']:>6.0f}", flush=True)
        if args.json:
            report = {"device": device, "seed": seed, "rows": results}
            Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
