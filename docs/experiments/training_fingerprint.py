"""What a refactor must not change: each variant's training on one split, printed as JSON.

    python docs/experiments/training_fingerprint.py cora_ml 42 > after.json
    git stash; python docs/experiments/training_fingerprint.py cora_ml 42 > before.json; git stash pop
    diff before.json after.json     # empty: the refactor moved no number

For each of blade, daemon and sage: the best validation MRR@10, the curve per epoch, the target
prior's refit, the walk channel's fit and the epochs, with params.yaml's values (untuned) on the
seeded split of a graph of compare.datasets.
"""
import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pipeline import compare  # noqa: E402
from pipeline.artifacts import load_split_graph  # noqa: E402
from pipeline.config import load_params  # noqa: E402
from pipeline.train import fit_variant  # noqa: E402

graph_name, seed = sys.argv[1], int(sys.argv[2])
_, params = compare.settings(load_params(), argparse.Namespace(dataset=graph_name, edges=None, name=None,
                                                                 trials=0))
with tempfile.TemporaryDirectory() as folder:
    compare.ingest_seed(params, Path(folder) / "ingest", seed)
    graph = load_split_graph(Path(folder) / "ingest")
    out = {}
    for variant in ("blade", "daemon", "sage"):
        result = fit_variant(variant, graph, params["neighbourhood"], params["train"], seed, None,
                             progress=False)
        out[variant] = {"best_val_mrr@10": result.best_score, "curve": result.curve,
                        "target_prior": result.target_prior, "walk_channel": result.walk_fit,
                        "epochs": result.epochs}
print(json.dumps(out, indent=1, sort_keys=True))
