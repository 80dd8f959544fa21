"""`blade summary`: the end of `make run`, from the stages' metric files, at most 100 columns."""

import json

from pipeline import summary

EVALUATE = {
    "dataset": "tiny", "split": "test", "evaluated_edges": 4, "split_edges": 5, "seed": 7,
    "methods": {
        "blade": {"overall": {"hit_rate@10": 0.75, "mrr@10": 0.5}, "direction_auc": 0.875,
                  "buckets": {"q1: d_in 0-1": {"hit_rate@10": 1.0, "mrr@10": 1.0},
                              "low: d_in <= 2": {"hit_rate@10": 0.5, "mrr@10": 0.25}}},
        "sage": {"overall": {"hit_rate@10": 0.5, "mrr@10": 0.125}, "direction_auc": 0.5,
                 "buckets": {"low: d_in <= 2": {"hit_rate@10": 0.25, "mrr@10": 0.0625}}},
        "walk": {"overall": {"hit_rate@10": 0.75, "mrr@10": 0.4}, "direction_auc": 0.625,
                 "buckets": {"low: d_in <= 2": {"hit_rate@10": 0.5, "mrr@10": 0.125}},
                 "subsets": {"reverse in training": {"mrr@10": 0.75},
                             "reverse not in training": {"mrr@10": 0.25}},
                 "global": {"auc": 0.9, "hits@50": 0.375}},
        "popularity": {"overall": {"hit_rate@10": 0.25, "mrr@10": 0.0625}, "direction_auc": 0.75,
                       "buckets": {}},
    },
}
TUNE = {"best_val_mrr@10": 0.4375, "best_trial": 0, "trials_complete": 2, "trials_pruned": 1,
        "trials_failed": 0, "seconds": 90.0}
BEST = {"study": "blade-tiny-0123456789ab", "trial": 0,
        "overrides": {"neighbourhood.alpha_multiplier": 1.0, "neighbourhood.n_max": 10,
                      "train.learning_rate": 0.02}}
SCORE = {"scored": 1234, "k": 20, "queries_per_second": 6552.3, "providers": ["CPUExecutionProvider"],
         "index": "exact", "model": "models:/blade-tiny@champion",
         "output": "outputs/score/recommendations.parquet"}


def _write(folder, name, values):
    (folder / f"{name}.json").write_text(json.dumps(values))


def test_summary_shows_the_chosen_trial_each_method_and_where_the_recommendations_are(tmp_path):
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    for name, values in (("evaluate", EVALUATE), ("tune", TUNE), ("score", SCORE)):
        _write(metrics, name, values)
    _write(tmp_path, "best_params", BEST)
    text = summary.summary(metrics, tmp_path / "best_params.json")
    lines = text.splitlines()
    assert max(map(len, lines)) <= 100
    assert "chosen trial 0 (validation MRR@10 0.4375)" in text
    assert "  chosen: alpha x 1, n_max 10, lr 0.02" in lines
    # one row per method: HR@10, MRR@10, then the low-degree bucket's (not q1's), the two subsets,
    # direction AUC and the global Hits@50 (nan where a result predates them)
    assert [line.split() for line in lines if line.startswith(("  BLADE", "  GraphSAGE", "  walk"))] == [
        ["BLADE", "0.7500", "0.5000", "0.5000", "0.2500", "nan", "nan", "0.8750", "nan"],
        ["GraphSAGE", "0.5000", "0.1250", "0.2500", "0.0625", "nan", "nan", "0.5000", "nan"],
        ["walk", "on", "A", "+", "A^T", "0.7500", "0.4000", "0.5000", "0.1250", "0.7500", "0.2500",
         "0.6250", "0.3750"]]
    # the best baseline by MRR@10 (the walk, not popularity; GraphSAGE is a trained model): 0.5 / 0.4
    assert "  best baseline: walk on A + A^T (MRR@10 0.4000); BLADE +25.0%" in lines
    assert "low = d_in <= 2" in text
    assert "1,234 queries, top-20 each, 6,552 queries/s" in text
    assert "recommendations: outputs/score/recommendations.parquet" in text
    # stages that have not run are named, not guessed
    assert "Registry: not run yet (dvc repro register)" in lines
    assert "Graph: not ingested yet (dvc repro ingest)" in lines


def test_summary_wraps_to_the_width_asked(tmp_path):
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    _write(metrics, "tune", TUNE)
    _write(tmp_path, "best_params", BEST)
    narrow = summary.summary(metrics, tmp_path / "best_params.json", width=60)
    assert max(map(len, narrow.splitlines())) <= 60
    assert "chosen trial 0" in narrow.replace("\n", " ")
