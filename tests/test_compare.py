"""`blade compare` on a user's own tiny edge list, over two seeds."""

import argparse
import json

import pytest
import yaml

from pipeline import compare
from tests.conftest import PROJECT_ROOT

EDGES = [(i, (i + 1) % 6) for i in range(6)] + [(6 + i, 6 + (i + 1) % 6) for i in range(6)]
EDGES += [(0, 6), (6, 0), (3, 9), (1, 7), (2, 8), (4, 10), (5, 11), (11, 5), (0, 3), (9, 2)]


@pytest.mark.slow
def test_compare_on_a_user_edge_list_over_two_seeds(in_project_tmp):
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    params["ingest"]["split"] = {"train": 0.6, "val": 0.2, "test": 0.2}
    params["neighbourhood"].update({"n_min": 1, "n_max": 3})
    params["train"].update({"dim": 8, "batch_size": 8, "max_epochs": 2, "fixed_fanout": 2,
                            "accelerator": "cpu", "devices": 1})
    (in_project_tmp / "mine.csv").write_text(
        "source,target\n" + "\n".join(f"p{u},p{v}" for u, v in EDGES) + "\n")
    args = argparse.Namespace(dataset=None, edges="mine.csv", name=None, seeds=[0, 1],
                              variants=["blade", "daemon"])
    report = compare.main(params, args)
    assert report["name"] == "mine" and report["seeds"] == [0, 1]
    assert [run["seed"] for run in report["runs"]] == [0, 1]
    methods = {"blade", "daemon", "popularity", "cooccurrence"}
    assert all(set(run["methods"]) == methods for run in report["runs"])
    # the summary is the mean and (population) std of the two seeds' values
    values = [run["methods"]["blade"]["overall"]["mrr@10"] for run in report["runs"]]
    cell = report["summary"]["blade"]["mrr@10"]
    assert cell["n"] == 2
    assert cell["mean"] == pytest.approx(sum(values) / 2)
    assert cell["std"] == pytest.approx(abs(values[0] - values[1]) / 2)
    saved = json.loads((in_project_tmp / "reports" / "compare" / "mine.json").read_text())
    assert saved["summary"] == report["summary"]


def test_compare_rejects_an_unknown_dataset(in_project_tmp):
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    args = argparse.Namespace(dataset="nope", edges=None, name=None, seeds=None, variants=None)
    with pytest.raises(compare.ConfigError, match="compare.datasets has no 'nope'"):
        compare.main(params, args)
