"""Id mapping, cleaning and the split; the stage's outputs and its all-or-nothing writes."""

import json

import numpy as np
import pandas as pd
import pytest

from pipeline import ingest as ingest_stage
from pipeline.config import ConfigError
from pipeline.edges import clean_edges, map_ids, split_edges
from pipeline.readers import InputError, RawGraph


def test_string_ids_map_to_contiguous_ints_and_back():
    raw = RawGraph(source=np.array(["phone", "case", "phone"], dtype=object),
                   target=np.array(["case", "cable", "cable"], dtype=object))
    source, target, product_ids = map_ids(raw)
    # sorted ids: cable=0, case=1, phone=2
    assert product_ids.tolist() == ["cable", "case", "phone"]
    assert source.tolist() == [2, 1, 2] and target.tolist() == [1, 0, 0]
    # round trip: the mapping gives back every raw id
    assert product_ids[source].tolist() == raw.source.tolist()
    assert product_ids[target].tolist() == raw.target.tolist()


def test_integer_ids_keep_numeric_order():
    raw = RawGraph(source=np.array([10, 9, 100]), target=np.array([9, 100, 10]))
    _, _, product_ids = map_ids(raw)
    assert product_ids.tolist() == ["9", "10", "100"]  # numeric, not "10" < "100" < "9"


def test_self_loops_and_duplicates_are_removed_and_counted():
    raw = RawGraph(source=np.array([1, 1, 2, 3, 1]), target=np.array([2, 2, 2, 1, 2]))
    graph = clean_edges(raw)
    # edges 1->2 (x3, two duplicates), 2->2 (self-loop), 3->1
    assert graph.self_loops_removed == 1
    assert graph.duplicates_removed == 2
    pairs = sorted(zip(graph.product_ids[graph.source], graph.product_ids[graph.target]))
    assert pairs == [("1", "2"), ("3", "1")]


def test_split_sizes_disjoint_and_seeded():
    parts = split_edges(1000, {"train": 0.75, "val": 0.05, "test": 0.2}, seed=3)
    assert [len(parts[name]) for name in ("train", "val", "test")] == [750, 50, 200]
    together = np.concatenate(list(parts.values()))
    assert len(np.unique(together)) == 1000  # a partition: disjoint and complete
    again = split_edges(1000, {"train": 0.75, "val": 0.05, "test": 0.2}, seed=3)
    other = split_edges(1000, {"train": 0.75, "val": 0.05, "test": 0.2}, seed=4)
    assert all(np.array_equal(parts[k], again[k]) for k in parts)
    assert not np.array_equal(parts["test"], other["test"])


@pytest.mark.parametrize("ratios", [{"train": 0.7, "val": 0.1, "test": 0.1},
                                    {"train": 0.75, "val": 0.25}])
def test_split_rejects_bad_ratios(ratios):
    with pytest.raises(ConfigError, match="ingest.split"):
        split_edges(10, ratios, seed=0)


PARAMS = {
    "base": {"seed": 0, "dataset": "tiny"},
    "ingest": {"edges": "edges.csv", "format": "auto", "source_column": "source",
               "target_column": "target", "id_type": "auto", "verify_checksums": True,
               "split": {"train": 0.6, "val": 0.2, "test": 0.2}},
}


def test_stage_writes_mapping_splits_and_metrics(in_project_tmp):
    (in_project_tmp / "edges.csv").write_text(
        "source,target\nA,B\nB,C\nC,A\nA,A\nA,B\nC,D\nD,E\nE,A\n"
    )
    metrics = ingest_stage.main(PARAMS)
    assert metrics["nodes"] == 5 and metrics["edges"] == 6
    assert metrics["self_loops_removed"] == 1 and metrics["duplicates_removed"] == 1
    assert (metrics["train_edges"], metrics["val_edges"], metrics["test_edges"]) == (4, 1, 1)
    nodes = pd.read_parquet("outputs/ingest/nodes.parquet")
    assert nodes["product_id"].tolist() == ["A", "B", "C", "D", "E"]
    edges = pd.concat([pd.read_parquet(f"outputs/ingest/{s}.parquet") for s in ("train", "val", "test")])
    named = sorted(zip(nodes["product_id"][edges["source"]], nodes["product_id"][edges["target"]]))
    assert named == [("A", "B"), ("B", "C"), ("C", "A"), ("C", "D"), ("D", "E"), ("E", "A")]
    assert json.loads(open("metrics/ingest.json").read())["edges"] == 6


def test_bad_input_leaves_no_outputs_and_keeps_previous_ones(in_project_tmp):
    (in_project_tmp / "edges.csv").write_text("source,target\nA,B\nB,C\nC,A\n")
    ingest_stage.main(PARAMS)
    before = pd.read_parquet("outputs/ingest/nodes.parquet")
    (in_project_tmp / "edges.csv").write_text("source,target\nA,B\nB\n")
    with pytest.raises(InputError, match=r"edges\.csv:3"):
        ingest_stage.main(PARAMS)
    # the earlier complete output is untouched and no temporary leftovers remain
    assert pd.read_parquet("outputs/ingest/nodes.parquet").equals(before)
    assert sorted(p.name for p in (in_project_tmp / "outputs").iterdir()) == ["ingest"]


def test_failure_mid_write_leaves_nothing(in_project_tmp, monkeypatch):
    (in_project_tmp / "edges.csv").write_text("source,target\nA,B\nB,C\nC,A\n")
    real_write = ingest_stage.write_parquet
    calls = []

    def fail_on_third_file(path, frame):
        calls.append(path)
        if len(calls) == 3:  # nodes and train are written, val fails
            raise OSError("disk full")
        real_write(path, frame)

    monkeypatch.setattr(ingest_stage, "write_parquet", fail_on_third_file)
    with pytest.raises(OSError, match="disk full"):
        ingest_stage.main(PARAMS)
    assert len(calls) == 3
    assert list((in_project_tmp / "outputs").iterdir()) == []  # no partial directory
    assert not (in_project_tmp / "metrics" / "ingest.json").exists()
