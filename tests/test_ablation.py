"""`blade ablate` on a user's own tiny edge list: one training per row, resumable, baselines beside."""

import argparse
import json

import pytest

from pipeline import ablation, compare, provenance
from tests.test_compare import EDGES, tiny_params


def _args(rows=None, timeout_seconds=None, seeds=None) -> argparse.Namespace:
    return argparse.Namespace(dataset=None, edges="mine.csv", name=None, rows=rows, trials=None,
                              timeout_seconds=timeout_seconds, seeds=seeds)


def test_ablate_trains_each_row_once_and_keeps_finished_rows(in_project_tmp, monkeypatch):
    params = tiny_params()
    params["ablation"] = {"rows": {"ours": {}, "no similarity channel": {"train.similarity": "none"},
                                   "GraphSAGE": {"variant": "sage"}}}
    (in_project_tmp / "mine.csv").write_text(
        "source,target\n" + "\n".join(f"p{u},p{v}" for u, v in EDGES) + "\n")
    report = ablation.main(params, _args())
    assert report["dataset"] == "mine" and report["seed"] == params["compare"]["seeds"][0]
    rows = report["rows"]
    assert list(rows) == ["ours", "no similarity channel", "GraphSAGE"]
    assert rows["GraphSAGE"]["variant"] == "sage" and rows["ours"]["variant"] == "blade"
    for row in rows.values():
        # the best epoch's score is the curve's maximum, and the curve has one value per epoch
        assert row["best_val_mrr@10"] == pytest.approx(max(row["val_mrr@10_curve"]), abs=1e-5)
        assert len(row["val_mrr@10_curve"]) == row["epochs"] == 2
        assert row["untrained_val_mrr@10"] is not None
        assert 0.0 <= row["val_direction_auc"] <= 1.0  # on the one-way validation edges
        assert 0.0 <= row["val_low_mrr@10"] <= 1.0
    assert set(report["baselines"]) == {"cooccurrence", "popularity"}
    assert report["val_one_way_edges"] > 0
    assert 0.0 <= report["baselines"]["popularity"]["val_direction_auc"] <= 1.0
    saved = json.loads((in_project_tmp / "reports/ablation/mine.json").read_text())
    assert saved["rows"] == rows

    # a re-run keeps every finished row; a changed row's overrides train that row alone
    trained = []
    real_fit = ablation.fit_variant
    monkeypatch.setattr(ablation, "fit_variant",
                        lambda variant, *a, **k: trained.append(variant) or real_fit(variant, *a, **k))
    del saved["rows"]["ours"]["code"]  # a row from before rows recorded their code: a kept row gets it
    (in_project_tmp / "reports/ablation/mine.json").write_text(json.dumps(saved))
    again = ablation.main(params, _args())
    assert trained == []
    assert again["rows"]["ours"]["code"] == rows["ours"]["code"] == provenance.code_digest()
    params["ablation"]["rows"]["no similarity channel"] = {"train.similarity": "reciprocal"}
    ablation.main(params, _args(["no similarity channel"]))
    assert trained == ["blade"]


def test_ablate_timeout_stops_starting_rows_and_the_next_run_goes_on(in_project_tmp, monkeypatch):
    params = tiny_params()
    rows = {"ours": {}, "GraphSAGE": {"variant": "sage"}, "one layer": {"train.num_layers": 1}}
    params["ablation"] = {"rows": rows, "timeout_seconds": 1e-6}  # spent by any first row
    (in_project_tmp / "mine.csv").write_text(
        "source,target\n" + "\n".join(f"p{u},p{v}" for u, v in EDGES) + "\n")
    trained = []
    real_fit = ablation.fit_variant
    monkeypatch.setattr(ablation, "fit_variant",
                        lambda variant, *a, **k: trained.append(variant) or real_fit(variant, *a, **k))
    first = ablation.main(params, _args())
    assert trained == ["blade"]  # the first row always starts, then the budget is spent
    assert list(first["rows"]) == ["ours"] and first["pending"] == ["GraphSAGE", "one layer"]
    second = ablation.main(params, _args())
    assert trained == ["blade", "sage"] and second["pending"] == ["one layer"]
    # --timeout-seconds 0 lifts the budget: the rest trains in one run, the table in listed order
    params["ablation"]["rows"] = {"one layer": rows["one layer"], "ours": {}, "GraphSAGE": rows["GraphSAGE"]}
    third = ablation.main(params, _args(timeout_seconds=0))
    assert trained == ["blade", "sage", "blade"] and third["pending"] == []
    assert list(third["rows"]) == ["one layer", "ours", "GraphSAGE"]


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
    # another split: other validation edges, so another score; the main table is untouched
    seven = repeated["seeds"][7]["rows"]["ours"]
    assert seven["stamp"] != main["rows"]["ours"]["stamp"]
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
    params["ablation"] = {"rows": {"ours": {}, "bad": {"train.dropout": 1.5}}}
    with pytest.raises(compare.ConfigError,
                       match="ablation.rows.bad: train.dropout: must be less than 1 \\(got 1.5\\)"):
        ablation.main(params, _args(["bad"]))
