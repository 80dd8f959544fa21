"""Per-batch re-weighting of one epoch's aggregation: excluded first-hop edges drop out."""

import torch

from models.batching import EpochAggregation
from models.sampler import NeighbourhoodSampler

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


def _weighted_pairs(aggregation: EpochAggregation, excluded: torch.Tensor | None) -> set:
    dense = aggregation.matrix(excluded).to_dense()
    return {tuple(pair) for pair in dense.nonzero().tolist()}


def test_a_batch_mask_removes_exactly_the_sampled_pairs_through_its_edges():
    # Edges e0..e6: 0->1, 1->2, 1->3, 2->4, 3->4, 4->5, 5->0; n_u = 3, h_max = 2.
    # Mask e0 (0->1) and e5 (4->5). Out: node 0 loses 1, 2, 3 (all through e0), node 4 loses
    # 5 and 0 (through e5). In: node 1 loses 0 and 5 (first hop e0), node 5 loses 4, 2, 3
    # (first hop e5). Node 0 keeps 4 in S_in: the path 4 -> 5 -> 0 uses e5 second, e6 first.
    graph = torch.tensor([[0, 1, 1, 2, 3, 4, 5], [1, 2, 3, 4, 4, 5, 0]])
    hoods = NeighbourhoodSampler(graph, 6, torch.full((6,), 3), h_max=2).sample(
        torch.Generator().manual_seed(0))
    mask = torch.zeros(7, dtype=torch.bool)
    mask[[0, 5]] = True
    out_agg = EpochAggregation(hoods.out_index, hoods.out_via_edge, 6)
    in_agg = EpochAggregation(hoods.in_index, hoods.in_via_edge, 6)
    out_all = {tuple(pair) for pair in hoods.out_index.T.tolist()}
    in_all = {tuple(pair) for pair in hoods.in_index.T.tolist()}
    assert _weighted_pairs(out_agg, None) == out_all
    assert out_all - _weighted_pairs(out_agg, mask) == {(0, 1), (0, 2), (0, 3), (4, 5), (4, 0)}
    assert in_all - _weighted_pairs(in_agg, mask) == {(1, 0), (1, 5), (5, 4), (5, 2), (5, 3)}
    assert (0, 4) in _weighted_pairs(in_agg, mask)
