"""Degree statistics on a 5-node digraph whose figures are worked out by hand."""

import math

import pandas as pd
import pytest
import torch

from models.graph import in_out_degrees, reverse_exists
from pipeline.artifacts import SplitGraph
from pipeline.degree_stats import degree_statistics

# 0->1, 1->0 (a reciprocal pair), 0->2, 1->2, 3->2, 4->2, 3->1
# in-degrees: node0 1, node1 2, node2 4, node3 0, node4 0
# out-degrees: node0 2, node1 2, node2 0, node3 2, node4 1
EDGES = torch.tensor([[0, 1, 0, 1, 3, 4, 3], [1, 0, 2, 2, 2, 2, 1]])


def test_degrees_and_reverse_edges():
    in_degree, out_degree = in_out_degrees(EDGES, 5)
    assert in_degree.tolist() == [1, 2, 4, 0, 0]
    assert out_degree.tolist() == [2, 2, 0, 2, 1]
    assert reverse_exists(EDGES, EDGES, 5).tolist() == [True, True] + [False] * 5


def test_degree_statistics_by_hand():
    graph = SplitGraph(num_nodes=5, product_ids=None, train=EDGES, val=EDGES[:, :0],
                       test=EDGES[:, :0], features=None)
    neighbourhood = {"d_min": 1, "alpha": 2.0, "alpha_multiplier": 1.0, "n_min": 2, "n_max": 8}
    metrics, table = degree_statistics(graph, neighbourhood)
    # tail d >= 1: {1, 2, 4}: alpha_hat = 1 + 3 / (3 ln 2)
    assert metrics["alpha_hat"] == pytest.approx(1 + 1 / math.log(2), abs=1e-4)
    assert metrics["one_way_edge_share"] == pytest.approx(5 / 7, abs=1e-4)
    assert (metrics["in_degree_zero"], metrics["out_degree_zero"]) == (2, 1)
    # n_u = ceil(8 / max(d_in, 1)), clipped to [2, 8]: d 1 -> 8, 2 -> 4, 4 -> 2, 0 -> 8
    assert table["neighbourhood_size"].tolist() == [8, 4, 2, 8, 8]
    assert isinstance(table, pd.DataFrame)
