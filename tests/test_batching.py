"""Per-batch re-weighting of one epoch's aggregation: excluded first-hop edges drop out."""

import torch

from models.batching import EpochAggregation

# Pairs (u, v) with their first-hop training edge: row 0 aggregates nodes 1 and 2 (via edges
# 0 and 1), row 1 aggregates node 2 (via edge 2, a 1-hop pair) and node 3 (via edge 2 too: a
# 2-hop pair reached through the same first edge). Rows 2 and 3 are empty.
INDEX = torch.tensor([[0, 0, 1, 1], [1, 2, 2, 3]])
VIA = torch.tensor([0, 1, 2, 2])
X = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 4.0], [0.0, 8.0]])


def test_mean_without_exclusions():
    aggregation = EpochAggregation(INDEX, VIA, num_nodes=4)
    out = aggregation.matrix(None) @ X
    # row 0: mean(x1, x2) = (1, 2); row 1: mean(x2, x3) = (0, 6); rows 2, 3: zero
    assert torch.allclose(out, torch.tensor([[1.0, 2.0], [0.0, 6.0], [0.0, 0.0], [0.0, 0.0]]))


def test_excluding_a_batch_edge_drops_every_pair_reached_through_it():
    aggregation = EpochAggregation(INDEX, VIA, num_nodes=4)
    excluded = torch.tensor([False, True, True])  # edges 1 and 2 are in the batch
    out = aggregation.matrix(excluded) @ X
    # row 0 keeps only x1 (mean over the 1 kept pair); row 1 loses both pairs -> zero
    assert torch.allclose(out, torch.tensor([[2.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]))


def test_sum_and_degree_weighted():
    degree = torch.tensor([0, 3, 1, 0])
    total = EpochAggregation(INDEX, VIA, 4, "sum").matrix(None) @ X
    assert torch.allclose(total[0], torch.tensor([2.0, 4.0]))
    weighted = EpochAggregation(INDEX, VIA, 4, "degree_weighted", degree).matrix(None).to_dense()
    # A[0, 1] = 1 / sqrt(2 * (3 + 1)) ; A[0, 2] = 1 / sqrt(2 * (1 + 1))
    assert torch.isclose(weighted[0, 1], torch.tensor(1 / 8**0.5))
    assert torch.isclose(weighted[0, 2], torch.tensor(0.5))


def test_gradient_uses_the_transpose():
    aggregation = EpochAggregation(INDEX, VIA, num_nodes=4)
    matrix = aggregation.matrix(torch.tensor([False, True, False]))
    x = X.clone().requires_grad_(True)
    (matrix @ x).sum().backward()
    dense = matrix.to_dense()
    # d sum(A x) / d x = A^T 1: column sums of A, broadcast over features
    assert torch.allclose(x.grad, dense.sum(dim=0, keepdim=True).T.expand(-1, 2))
