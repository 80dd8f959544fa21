"""`blade compare` on a user's own tiny edge list, over two seeds."""

import argparse
import json

import pytest
import torch
import yaml

from models.graph import in_out_degrees
from pipeline import compare, tracking
from pipeline.artifacts import load_split_graph
from tests.conftest import PROJECT_ROOT

EDGES = [(i, (i + 1) % 6) for i in range(6)] + [(6 + i, 6 + (i + 1) % 6) for i in range(6)]
EDGES += [(0, 6), (6, 0), (3, 9), (1, 7), (2, 8), (4, 10), (5, 11), (11, 5), (0, 3), (9, 2)]


def tiny_params() -> dict:
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    params["ingest"]["split"] = {"train": 0.6, "val": 0.2, "test": 0.2}
    params["neighbourhood"].update({"n_min": 1, "n_max": 3})
    params["train"].update({"dim": 8, "batch_size": 8, "max_epochs": 2, "fixed_fanout": 2,
                            "accelerator": "cpu", "devices": 1})
    params["tune"]["space"] = {"neighbourhood.n_max": {"low": 2, "high": 4, "int": True},
                               "train.dim": {"choices": [8, 16]}}
    params["compare"]["tune"] = {"n_trials": 3, "max_epochs": 2, "include_defaults": True,
                                 "startup_trials": 3}
    return params


@pytest.mark.slow
def test_compare_splits_tunes_runs_every_seed_and_summarises(in_project_tmp, monkeypatch):
    params = tiny_params()
    (in_project_tmp / "mine.csv").write_text(
        "source,target\n" + "\n".join(f"p{u},p{v}" for u, v in EDGES) + "\n")
    args = argparse.Namespace(dataset=None, edges="mine.csv", name=None, seeds=[0, 1],
                              variants=["blade", "daemon", "sage"], trials=None, step=None)
    report = compare.main(params, args)
    assert report["name"] == "mine" and report["seeds"] == [0, 1]
    assert [run["seed"] for run in report["runs"]] == [0, 1]
    methods = {"blade", "daemon", "sage", "popularity", "cooccurrence", "walk", "walk_directed", "rp3beta",
               "rp3beta_directed", "item_knn"}
    assert all(set(run["methods"]) == methods for run in report["runs"])
    # every baseline's grid point was chosen on validation edges, and the summary has the subsets
    assert report["runs"][0]["methods"]["walk"]["settings"]["chosen"]["weights"] is not None
    assert {"rev_mrr@10", "oth_mrr@10", "global_hits@50"} <= set(report["summary"]["walk"])

    # the study: 3 trials on seed 0's split, trial 0 = params.yaml's values (n_max 3, dim 8)
    tuned = report["tuned"]
    assert tuned["trials"]["complete"] == 3 and tuned["split_seed"] == 0
    assert tuned["default_val_mrr@10"] is not None
    assert tuned["best_val_mrr@10"] >= tuned["default_val_mrr@10"]
    assert set(tuned["overrides"]) == {"neighbourhood.n_max", "train.dim"}
    # the dual models get the tuned values, the undirected baseline keeps params.yaml's
    run = report["runs"][0]["methods"]
    assert run["blade"]["tuned"] and run["daemon"]["tuned"] and not run["sage"]["tuned"]

    # alpha_hat: the maximum-likelihood fit of the seed's training in-degrees at d_min = 1
    compare.ingest_seed(compare.settings(params, args)[1], in_project_tmp / "split0", 0)
    graph = load_split_graph(in_project_tmp / "split0")
    train_in, _ = in_out_degrees(graph.train, graph.num_nodes)
    tail = train_in[train_in >= 1].double()
    expected = 1 + tail.numel() / torch.log(tail).sum().item()
    assert report["runs"][0]["power_law"]["alpha_hat"] == pytest.approx(expected, abs=1e-4)

    # the summary is the mean and (population) std of the two seeds' values
    values = [run["methods"]["blade"]["overall"]["mrr@10"] for run in report["runs"]]
    cell = report["summary"]["blade"]["mrr@10"]
    assert cell["n"] == 2
    assert cell["mean"] == pytest.approx(sum(values) / 2)
    assert cell["std"] == pytest.approx(abs(values[0] - values[1]) / 2)
    saved = json.loads((in_project_tmp / "reports" / "compare" / "mine.json").read_text())
    assert saved["summary"] == report["summary"]

    # MLflow: one run per seed and method, tagged for the UI
    client = tracking.client()
    experiment = client.get_experiment_by_name("blade-compare")
    runs = client.search_runs([experiment.experiment_id], "tags.stage = 'compare'")
    assert sorted((r.data.tags["method"], r.data.tags["seed"]) for r in runs) == sorted(
        (method, str(seed)) for method in methods for seed in (0, 1))

    # each step on its own, as reports/dvc.yaml runs them: no hidden cache, a step called again
    # does its work again (DVC decides when to call it)
    trained = []
    real_fit = compare.fit_variant
    monkeypatch.setattr(compare, "fit_variant",
                        lambda variant, *a, **k: trained.append(variant) or real_fit(variant, *a, **k))
    seed_args = argparse.Namespace(**vars(args) | {"step": "seed", "seeds": [1]})
    assert compare.main(params, seed_args) is None
    assert trained == ["blade", "daemon", "sage"]
    again = json.loads((in_project_tmp / "reports/compare/mine/seed1.json").read_text())
    assert again["methods"]["blade"]["overall"] == report["runs"][1]["methods"]["blade"]["overall"]
    summary_args = argparse.Namespace(**vars(args) | {"step": "summary"})
    assert compare.main(params, summary_args)["summary"] == report["summary"]


@pytest.mark.slow
def test_a_step_without_its_input_names_the_step_to_run_first(in_project_tmp):
    params = tiny_params()
    (in_project_tmp / "mine.csv").write_text(
        "source,target\n" + "\n".join(f"p{u},p{v}" for u, v in EDGES) + "\n")
    args = argparse.Namespace(dataset=None, edges="mine.csv", name=None, seeds=[0, 1], variants=["sage"],
                              trials=0, step="seed")
    with pytest.raises(compare.ConfigError, match="tuned.json: not tuned yet"):
        compare.main(params, args)
    compare.main(params, argparse.Namespace(**vars(args) | {"step": "tune"}))
    assert json.loads((in_project_tmp / "reports/compare/mine/tuned.json").read_text()) == {}  # 0 trials
    compare.main(params, argparse.Namespace(**vars(args) | {"seeds": [0]}))
    with pytest.raises(compare.ConfigError, match=r"seed1.json: seed 1 has not run"):
        compare.main(params, argparse.Namespace(**vars(args) | {"step": "summary"}))
    # nothing but the JSON files is left behind: the splits and embeddings were temporary
    assert sorted(path.name for path in (in_project_tmp / "reports/compare/mine").iterdir()) == [
        "seed0.json", "tuned.json"]
    assert not (in_project_tmp / "outputs/compare/mine").exists() or not any(
        (in_project_tmp / "outputs/compare/mine").rglob("*.parquet"))


def test_compare_rejects_an_unknown_dataset(in_project_tmp):
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    args = argparse.Namespace(dataset="nope", edges=None, name=None, seeds=None, variants=None,
                              trials=None)
    with pytest.raises(compare.ConfigError, match="compare.datasets has no 'nope'"):
        compare.main(params, args)



@pytest.mark.slow
def test_a_graph_of_compare_datasets_runs_its_own_seeds(in_project_tmp):
    params = tiny_params()
    params["compare"]["tune"]["n_trials"] = 0
    (in_project_tmp / "mine.csv").write_text(
        "source,target\n" + "\n".join(f"p{u},p{v}" for u, v in EDGES) + "\n")
    params["compare"]["datasets"]["mine"] = {"edges": "mine.csv"}
    params["compare"]["seeds_per_graph"]["mine"] = [7]
    args = argparse.Namespace(dataset="mine", edges=None, name=None, seeds=None, variants=["sage"],
                              trials=None, step=None)
    report = compare.main(params, args)
    assert report["seeds"] == [7] and [run["seed"] for run in report["runs"]] == [7]
    assert params["compare"]["seeds"] == [42, 43, 44]  # the caller's params are left as they were
    own_file = argparse.Namespace(dataset=None, edges="mine.csv", name=None, trials=None)
    assert compare.settings(params, own_file)[1]["compare"]["seeds"] == [42, 43, 44]
