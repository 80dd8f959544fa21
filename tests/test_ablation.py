"""`blade ablate` on a user's own tiny edge list: one training per row, resumable, baselines beside."""

import argparse
import json

import pytest

from pipeline import ablation, compare, provenance
from tests.test_compare import EDGES, tiny_params


def _args(rows=None, seeds=None, step=None) -> argparse.Namespace:
    return argparse.Namespace(dataset=None, edges="mine.csv", name=None, rows=rows, trials=None,
                              seeds=seeds, step=step)


def test_ablate_trains_each_row_into_its_file_and_gathers_them(in_project_tmp, monkeypatch):
    params = tiny_params()
    params["ablation"] = {"rows": {"ours": {}, "no similarity channel": {"train.similarity": "none"},
                                   "GraphSAGE": {"variant": "sage"}}}
    (in_project_tmp / "mine.csv").write_text(
        "source,target\n" + "\n".join(f"p{u},p{v}" for u, v in EDGES) + "\n")
    report = ablation.main(params, _args())
    assert report["dataset"] == "mine" and report["seed"] == 42  # ablation.seed
    rows = report["rows"]
    assert list(rows) == ["ours", "no similarity channel", "GraphSAGE"] and report["pending"] == []
    assert rows["GraphSAGE"]["variant"] == "sage" and rows["ours"]["variant"] == "blade"
    for name, row in rows.items():
        # the best epoch's score is the curve's maximum, and the curve has one value per epoch
        assert row["best_val_mrr@10"] == pytest.approx(max(row["val_mrr@10_curve"]), abs=1e-5)
        assert len(row["val_mrr@10_curve"]) == row["epochs"] == 2
        assert row["untrained_val_mrr@10"] is not None
        assert 0.0 <= row["val_direction_auc"] <= 1.0  # on the one-way validation edges
        assert 0.0 <= row["val_low_mrr@10"] <= 1.0
        assert row["git_commit"] == provenance.git_commit()
        assert json.loads((in_project_tmp / f"reports/ablation/mine/{name}.json").read_text()) == row
    assert set(report["baselines"]) == {"cooccurrence", "popularity"}
    assert report["val_one_way_edges"] > 0
    assert 0.0 <= report["baselines"]["popularity"]["val_direction_auc"] <= 1.0
    assert json.loads((in_project_tmp / "reports/ablation/mine.json").read_text()) == report

    # as reports/dvc.yaml runs it: one row trains, nothing else (no hidden cache: it trains again);
    # the summary then lists the params.yaml rows in order and names those without a file
    trained = []
    real_fit = ablation.fit_variant
    monkeypatch.setattr(ablation, "fit_variant",
                        lambda variant, *a, **k: trained.append(variant) or real_fit(variant, *a, **k))
    assert ablation.main(params, _args(["GraphSAGE"], step="rows")) is None
    assert trained == ["sage"]
    params["ablation"]["rows"] = {"one layer": {"train.num_layers": 1}, "GraphSAGE": {"variant": "sage"},
                                  "ours": {}}
    summary = ablation.main(params, _args(step="summary"))
    assert trained == ["sage"]  # a summary trains nothing
    assert list(summary["rows"]) == ["GraphSAGE", "ours"] and summary["pending"] == ["one layer"]


def test_ablate_seeds_repeat_the_rows_with_ours_on_other_splits(in_project_tmp):
    params = tiny_params()
    params["ablation"] = {"rows": {"ours": {}, "one layer": {"train.num_layers": 1}}}
    (in_project_tmp / "mine.csv").write_text(
        "source,target\n" + "\n".join(f"p{u},p{v}" for u, v in EDGES) + "\n")
    main = ablation.main(params, _args())
    repeated = ablation.main(params, _args(rows=["one layer"], seeds=[7, 8]))
    # each seed gets its own file, with ours added so that the row pairs with it on that split
    for seed in (7, 8):
        saved = json.loads((in_project_tmp / f"reports/ablation/seeds/mine-{seed}.json").read_text())
        assert saved["seed"] == seed and list(saved["rows"]) == ["ours", "one layer"]
        assert saved["rows"] == repeated["seeds"][seed]["rows"]
    # another split: other validation edges; the main table is untouched
    assert repeated["seeds"][7]["val_edges"] > 0
    assert json.loads((in_project_tmp / "reports/ablation/mine.json").read_text())["rows"] == main["rows"]


def test_ablate_rejects_unknown_rows_and_keys(in_project_tmp):
    params = tiny_params()
    params["ablation"] = {"rows": {"ours": {}}}
    with pytest.raises(compare.ConfigError, match="ablation.rows has no 'nope'"):
        ablation.main(params, _args(["nope"]))
    params["ablation"] = {"rows": {"ours": {}, "bad": {"evaluate.ks": [1]}}}
    (in_project_tmp / "mine.csv").write_text(
        "source,target\n" + "\n".join(f"p{u},p{v}" for u, v in EDGES) + "\n")
    with pytest.raises(compare.ConfigError,
                       match="ablation: rows.bad: 'evaluate.ks' is not a train.\\* or neighbourhood.\\* key"):
        ablation.main(params, _args(["bad"]))
    params["ablation"] = {"rows": {"ours": {}, "dropout 0.1": {"train.dropout": 0.1}}}
    with pytest.raises(compare.ConfigError, match="rows.dropout 0.1: a row name cannot hold '.', ','"):
        ablation.main(params, _args())
    params["ablation"] = {"rows": {"ours": {}, "bad": {"train.dropout": 1.5}}}
    with pytest.raises(compare.ConfigError,
                       match="ablation.rows.bad: train.dropout: must be less than 1 \\(got 1.5\\)"):
        ablation.main(params, _args(["bad"]))
