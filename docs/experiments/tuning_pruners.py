"""The tuning study of `blade compare` on one graph's first split, with each pruner design:
none (every trial until early stopping), the median pruner (the design before f0560ae),
successive halving always (f0560ae) and the shipped one (halving only when the budget binds).

Run from the repository root:
    python docs/experiments/tuning_pruners.py cora_ml none,median,halving,shipped [seed]
Studies and MLflow runs go to a temporary folder; docs/decisions.md has what it printed.
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import optuna

folder = Path(tempfile.mkdtemp(prefix="pruners-"))
os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder / 'mlflow.db'}"  # before MLflow is imported

from pipeline import compare  # noqa: E402
from pipeline.artifacts import load_split_graph  # noqa: E402
from pipeline.config import load_params  # noqa: E402
from pipeline.study import halving_pruner  # noqa: E402
from pipeline.tune import TuneSettings, run_study  # noqa: E402

ds, designs = sys.argv[1], sys.argv[2].split(",")
seed = int(sys.argv[3]) if len(sys.argv) > 3 else 42
params = load_params()
_, p = compare.settings(params, argparse.Namespace(dataset=ds, edges=None, name=None, trials=None))
compare.ingest_seed(p, folder / ds / "ingest", seed)
graph = load_split_graph(folder / ds / "ingest")
p = dict(p, base=dict(p["base"], seed=seed))
pruners = {"none": optuna.pruners.NopPruner(),
           "median": optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0),
           "halving": halving_pruner(TuneSettings(**p["tune"])),
           "shipped": None}
for design in designs:
    started = time.time()
    result = run_study(graph, p, p["tune"], f"{ds}-{design}", f"sqlite:///{folder / design}.db", "pruners",
                       pruner=pruners[design])
    print(f"{ds} seed {seed} {design}: best trial {result.best_trial} {result.best_value:.4f} "
          f"(defaults {result.default_value:.4f}), {result.counts['complete']} complete, "
          f"{result.counts['pruned']} pruned, {time.time() - started:.0f} s", flush=True)
