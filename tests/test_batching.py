"""Per-batch re-weighting of one epoch's aggregation: pairs reached through excluded edges drop out."""

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
    # Mask e0 (0->1) and e5 (4->5): every pair whose path uses one of them, at either hop, goes.
    # Out: 0 loses 1 [e0], 2 [e0 e1], 3 [e0 e2]; 2 loses 5 [e3 e5]; 3 loses 5 [e4 e5];
    #      4 loses 5 [e5], 0 [e5 e6]; 5 loses 1 [e6 e0]. Node 1 keeps 4 [e1 e3].
    # In:  0 loses 4 (4->5->0: [e6 e5]); 1 loses 0 [e0], 5 [e0 e6]; 2 loses 0 [e1 e0];
    #      3 loses 0 [e2 e0]; 5 loses 4 [e5], 2 [e5 e3], 3 [e5 e4]. Node 4 keeps 1.
    graph = torch.tensor([[0, 1, 1, 2, 3, 4, 5], [1, 2, 3, 4, 4, 5, 0]])
    hoods = NeighbourhoodSampler(graph, 6, torch.full((6,), 3), h_max=2).sample(
        torch.Generator().manual_seed(0))
    mask = torch.zeros(7, dtype=torch.bool)
    mask[[0, 5]] = True
    out_agg = EpochAggregation(hoods.out_index, hoods.out_path_edges, 6)
    in_agg = EpochAggregation(hoods.in_index, hoods.in_path_edges, 6)
    out_all = {tuple(pair) for pair in hoods.out_index.T.tolist()}
    in_all = {tuple(pair) for pair in hoods.in_index.T.tolist()}
    assert _weighted_pairs(out_agg, None) == out_all
    assert out_all - _weighted_pairs(out_agg, mask) == {
        (0, 1), (0, 2), (0, 3), (2, 5), (3, 5), (4, 5), (4, 0), (5, 1)}
    assert in_all - _weighted_pairs(in_agg, mask) == {
        (0, 4), (1, 0), (1, 5), (2, 0), (3, 0), (5, 4), (5, 2), (5, 3)}
    # masking by the first hop alone would keep a second-hop use of a batch edge: the leak
    first_hop_only = EpochAggregation(hoods.in_index, hoods.in_via_edge, 6)
    assert (0, 4) in _weighted_pairs(first_hop_only, mask)


def test_padded_paths_mask_only_their_real_edges():
    # pair 0: path [e0] (padded), pair 1: path [e1, e2]; edge ids -1 are padding, not edge E-1
    index = torch.tensor([[0, 0], [1, 2]])
    paths = torch.tensor([[0, -1], [1, 2]])
    aggregation = EpochAggregation(index, paths, num_nodes=3)
    assert _weighted_pairs(aggregation, torch.tensor([False, False, True])) == {(0, 1)}
    assert _weighted_pairs(aggregation, torch.tensor([True, False, False])) == {(0, 2)}
