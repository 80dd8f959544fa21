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
    rows = aggregation.rows(torch.tensor([0]), torch.tensor([False, True, False]))
    assert rows.column.tolist() == [1] and rows.value.tolist() == [1.0]


# --- a mini-batch's computation graph ---------------------------------------------------------

from models.batching import computation_graph  # noqa: E402
from models.encoder import BladeEncoder, EncoderConfig, UndirectedSageEncoder  # noqa: E402


def test_computation_graph_grows_the_node_sets_layer_by_layer():
    # Pairs (u, v), v in S_out(u): 0 -> {1, 2}, 1 -> {2, 3}; S_in is the reverse.
    out_agg = EpochAggregation(INDEX, VIA, 4)
    in_agg = EpochAggregation(INDEX.flip(0), VIA, 4)
    graph = computation_graph(out_agg, in_agg, sources=torch.tensor([0]), targets=torch.tensor([3]),
                              num_layers=2)
    # layer 2: S = {0}, T = {3}; layer 1: S = {0} + S_in(3) = {0, 1}, T = {3} + S_out(0) = {3, 1, 2}
    # layer 0: S = {0, 1} + S_in({3, 1, 2}) = {0, 1} (S_in(2) = {0, 1}); T = {3, 1, 2} + S_out({0, 1})
    assert [nodes.tolist() for nodes in graph.source_nodes] == [[0, 1], [0, 1], [0]]
    assert [nodes.tolist() for nodes in graph.target_nodes] == [[3, 1, 2], [3, 1, 2], [3]]
    # layer-2 source row of node 0 averages t^1 of nodes 1 and 2 (local columns 1 and 2)
    assert torch.allclose(graph.out_adj[1].to_dense(), torch.tensor([[0.0, 0.5, 0.5]]))
    assert graph.source_position[0] == 0 and graph.source_position[3] == -1
    assert graph.target_position[3] == 0


def test_computation_graph_drops_excluded_edges_before_growing():
    out_agg = EpochAggregation(INDEX, VIA, 4)
    in_agg = EpochAggregation(INDEX.flip(0), VIA, 4)
    excluded = torch.tensor([True, False, False])  # pair 0 -> 1 (edge 0) is in the batch
    graph = computation_graph(out_agg, in_agg, torch.tensor([0]), torch.tensor([0]), 1, excluded)
    assert graph.target_nodes[0].tolist() == [0, 2]  # node 1 is no longer needed
    assert torch.allclose(graph.out_adj[0].to_dense(), torch.tensor([[0.0, 1.0]]))


def _random_digraph(num_nodes: int, num_edges: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    edges = torch.randint(0, num_nodes, (2, num_edges), generator=generator)
    edges = edges[:, edges[0] != edges[1]]
    return torch.unique(edges, dim=1)


def test_batch_embeddings_equal_the_full_graph_ones_with_the_same_exclusions():
    edges = _random_digraph(40, 160, seed=3)
    hoods = NeighbourhoodSampler(edges, 40, torch.full((40,), 3), h_max=2).sample(
        torch.Generator().manual_seed(1))
    out_agg = EpochAggregation(hoods.out_index, hoods.out_via_edge, 40)
    in_agg = EpochAggregation(hoods.in_index, hoods.in_via_edge, 40)
    excluded = torch.zeros(edges.shape[1], dtype=torch.bool)
    excluded[:10] = True
    torch.manual_seed(0)
    encoder = BladeEncoder(EncoderConfig(num_nodes=40, dim=8, num_layers=2))
    s_full, t_full = encoder(out_agg.matrix(excluded), in_agg.matrix(excluded))
    sources, targets = edges[0, :10], torch.cat([edges[1, :10], torch.tensor([5, 7, 39])])
    graph = computation_graph(out_agg, in_agg, sources, targets, 2, excluded)
    s, t = encoder.encode(graph)
    assert graph.source_nodes[-1].numel() < 40
    assert torch.allclose(s[graph.source_position[sources]], s_full[sources], atol=1e-6)
    assert torch.allclose(t[graph.target_position[targets]], t_full[targets], atol=1e-6)


def test_undirected_batch_embeddings_equal_the_full_graph_ones():
    edges = _random_digraph(30, 90, seed=4)
    both = torch.cat([edges, edges.flip(0)], dim=1)
    hoods = NeighbourhoodSampler(both, 30, torch.full((30,), 4), h_max=1, adaptive=False).sample(
        torch.Generator().manual_seed(2))
    agg = EpochAggregation(hoods.out_index, hoods.out_via_edge % edges.shape[1], 30)
    torch.manual_seed(0)
    encoder = UndirectedSageEncoder(EncoderConfig(num_nodes=30, dim=8, num_layers=2))
    h_full, _ = encoder(agg.matrix(None))
    graph = computation_graph(agg, None, edges[0, :5], edges[1, :5], 2)
    h, h_again = encoder.encode(graph)
    nodes = torch.cat([edges[0, :5], edges[1, :5]])
    assert h is h_again
    assert torch.allclose(h[graph.source_position[nodes]], h_full[nodes], atol=1e-6)


def test_batch_gradient_reaches_only_the_rows_it_used():
    out_agg = EpochAggregation(INDEX, VIA, 4)
    in_agg = EpochAggregation(INDEX.flip(0), VIA, 4)
    encoder = BladeEncoder(EncoderConfig(num_nodes=4, dim=2, num_layers=1))
    graph = computation_graph(out_agg, in_agg, torch.tensor([1]), torch.tensor([3]), 1)
    s, t = encoder.encode(graph)
    (s.sum() + t.sum()).backward()
    source_grad = encoder.source_input.weight.grad
    assert source_grad.is_sparse
    # s^1 of node 1 needs s^0 of 1; t^1 of 3 needs s^0 of S_in(3) = {1}: only row 1 of the source table
    assert sorted(source_grad.coalesce().indices()[0].tolist()) == [1]
