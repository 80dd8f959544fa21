"""Encoder tests on hand-made 2-4 node digraphs; expected numbers are worked out in comments."""

from __future__ import annotations

import pytest
import torch

from models.batching import aggregation_matrix
from models.config import BladeConfig
from models.encoder import (
    BladeEncoder,
    UndirectedSageEncoder,
    edge_score,
    score,
)

# Sampled pairs (u, v) of a 4-node example: S(0) = {1, 2}, S(1) = {2}, S(2) = {}, S(3) = {0, 1, 2}.
PAIRS = torch.tensor([[0, 0, 1, 3, 3, 3], [1, 2, 2, 0, 1, 2]])
X = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]])

def small_config(**overrides) -> BladeConfig:
    """A hand-checkable encoder: ReLU on hidden layers, random weights, a fixed scale of 5 and no
    channel or prior unless a test turns one on."""
    return BladeConfig(**{"activation": "relu", "weight_init": "random", "score_scale": 5.0,
                          "learn_scale": False, "similarity": "none", "target_prior": "none",
                          "shared_input": False, "source_prior": False, **overrides})



def test_mean_weights_written_out() -> None:
    a = aggregation_matrix(PAIRS, 4)
    expected = torch.tensor(
        [
            [0.0, 1 / 2, 1 / 2, 0.0],
            [0.0, 0.0, 1.0, 0.0],
            [0.0, 0.0, 0.0, 0.0],  # empty neighbourhood -> zero row
            [1 / 3, 1 / 3, 1 / 3, 0.0],
        ]
    )
    torch.testing.assert_close(a.to_dense(), expected)
    torch.testing.assert_close(a.transpose.to_dense(), expected.T)


def test_duplicate_pair_counts_twice_in_the_mean() -> None:
    # S(0) = multiset {1, 1, 2}: weights 2/3 on node 1, 1/3 on node 2.
    a = aggregation_matrix(torch.tensor([[0, 0, 0], [1, 1, 2]]), 3)
    torch.testing.assert_close(a.to_dense()[0], torch.tensor([0.0, 2 / 3, 1 / 3]))


def test_product_equals_hand_computed_means() -> None:
    # row 0: (X1 + X2) / 2 = ([3, 4] + [5, 6]) / 2 = [4, 5]; row 1: X2 = [5, 6];
    # row 2: empty -> [0, 0]; row 3: (X0 + X1 + X2) / 3 = [9, 12] / 3 = [3, 4].
    a = aggregation_matrix(PAIRS, 4)
    expected = torch.tensor([[4.0, 5.0], [5.0, 6.0], [0.0, 0.0], [3.0, 4.0]])
    torch.testing.assert_close(a @ X, expected)


def test_gradient_flows_to_x() -> None:
    # d sum(A X) / d X_v = column sum of A: v=0: 1/3, v=1: 1/2 + 1/3, v=2: 1/2 + 1 + 1/3, v=3: 0.
    a = aggregation_matrix(PAIRS, 4)
    x = X.clone().requires_grad_(True)
    (a @ x).sum().backward()
    column_sum = torch.tensor([1 / 3, 5 / 6, 11 / 6, 0.0])
    torch.testing.assert_close(x.grad, column_sum[:, None].expand(4, 2))


def test_gradient_matches_dense_autograd_on_random_graph() -> None:
    generator = torch.Generator().manual_seed(0)
    index = torch.randint(0, 30, (2, 120), generator=generator)
    a = aggregation_matrix(index, 30)
    x = torch.randn(30, 5, generator=generator, requires_grad=True)
    upstream = torch.randn(30, 5, generator=generator)
    (a @ x).backward(upstream)
    x_dense = x.detach().clone().requires_grad_(True)
    (a.to_dense() @ x_dense).backward(upstream)
    torch.testing.assert_close(x.grad, x_dense.grad)


def test_out_of_range_index_is_rejected() -> None:
    with pytest.raises(ValueError, match="outside"):
        aggregation_matrix(torch.tensor([[0], [4]]), 4)


def _hand_set(encoder: BladeEncoder, s0: torch.Tensor, t0: torch.Tensor, root: float) -> None:
    """W^1 = identity, bias 0, W_self^1 = root * identity, ID tables = s0, t0."""
    with torch.no_grad():
        encoder.source_input.weight.copy_(s0)
        encoder.target_input.weight.copy_(t0)
        encoder.neighbour[0].weight.copy_(torch.eye(2))
        encoder.neighbour[0].bias.zero_()
        encoder.root[0].weight.copy_(root * torch.eye(2))


def _adjacencies(edges: list[tuple[int, int]], num_nodes: int):
    """Full (unsampled) neighbourhoods: out pairs (u, v) and in pairs (v, u) of every u -> v."""
    out_index = torch.tensor(edges).T
    return (
        aggregation_matrix(out_index, num_nodes),
        aggregation_matrix(out_index.flip(0), num_nodes),
    )


def _unit(v: list[float]) -> torch.Tensor:
    v = torch.tensor(v)
    return v / v.norm()


# Layer-0 tables of the 4-node digraph 0 -> 1, 0 -> 2, 1 -> 2 (node 3 isolated).
S0 = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0], [3.0, 4.0]])
T0 = torch.tensor([[1.0, 1.0], [0.0, 1.0], [-3.0, 1.0], [0.0, 2.0]])
EDGES = [(0, 1), (0, 2), (1, 2)]


def test_source_is_mean_of_out_neighbours_targets_without_self_term() -> None:
    encoder = BladeEncoder(small_config(dim=2, num_layers=1), 4)
    _hand_set(encoder, S0, T0, root=0.0)
    s, t = encoder(*_adjacencies(EDGES, 4))
    # s_0 = norm(mean(t0_1, t0_2)) = norm([-1.5, 1]) = [-0.8321, 0.5547]: negative entry kept,
    # the last layer has no ReLU.
    torch.testing.assert_close(s[0], _unit([-1.5, 1.0]))
    # s_1 = norm(t0_2) = norm([-3, 1]); s_2 has no out-neighbours and no self term -> 0.
    torch.testing.assert_close(s[1], _unit([-3.0, 1.0]))
    torch.testing.assert_close(s[2], torch.zeros(2))
    # t_2 = norm(mean(s0_0, s0_1)) = norm([0.5, 0.5]); t_1 = norm(s0_0) = [1, 0].
    torch.testing.assert_close(t[2], _unit([0.5, 0.5]))
    torch.testing.assert_close(t[1], torch.tensor([1.0, 0.0]))


def test_self_term_adds_the_node_and_rescues_isolated_nodes() -> None:
    encoder = BladeEncoder(small_config(dim=2, num_layers=1), 4)
    _hand_set(encoder, S0, T0, root=1.0)
    s, t = encoder(*_adjacencies(EDGES, 4))
    # s_0 = norm(mean(t0_1, t0_2) + s0_0) = norm([-1.5 + 1, 1 + 0]) = norm([-0.5, 1]).
    torch.testing.assert_close(s[0], _unit([-0.5, 1.0]))
    # t_2 = norm(mean(s0_0, s0_1) + t0_2) = norm([0.5 - 3, 0.5 + 1]) = norm([-2.5, 1.5]).
    torch.testing.assert_close(t[2], _unit([-2.5, 1.5]))
    # Node 3 has no neighbours at all: s_3 = norm(s0_3) = [0.6, 0.8], t_3 = norm(t0_3) = [0, 1].
    torch.testing.assert_close(s[3], torch.tensor([0.6, 0.8]))
    torch.testing.assert_close(t[3], torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(s.norm(dim=1), torch.ones(4))
    torch.testing.assert_close(t.norm(dim=1), torch.ones(4))


def test_direction_awareness_on_one_way_edge() -> None:
    # One edge between nodes 0 and 1, in either direction; W = W_self = identity.
    s0 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    t0 = torch.tensor([[1.0, -1.0], [2.0, 2.0]])
    encoder = BladeEncoder(small_config(dim=2, num_layers=1), 2)
    _hand_set(encoder, s0, t0, root=1.0)
    s_fwd, t_fwd = encoder(*_adjacencies([(0, 1)], 2))
    s_rev, t_rev = encoder(*_adjacencies([(1, 0)], 2))
    # 0 -> 1: s_0 = norm(t0_1 + s0_0) = norm([3, 2]) (out side sees the edge);
    #         t_0 = norm(t0_0) = norm([1, -1]) (nobody points to 0).
    torch.testing.assert_close(s_fwd[0], _unit([3.0, 2.0]))
    torch.testing.assert_close(t_fwd[0], _unit([1.0, -1.0]))
    # 1 -> 0: s_0 = norm(s0_0) = [1, 0] (no out-neighbour any more);
    #         t_0 = norm(s0_1 + t0_0) = norm([1, 0]) = [1, 0]: the in side now carries the edge.
    torch.testing.assert_close(s_rev[0], torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(t_rev[0], torch.tensor([1.0, 0.0]))
    # The two directions score differently: s_0 . t_1 != s_1 . t_0.
    assert not torch.allclose(s_fwd[0] @ t_fwd[1], s_fwd[1] @ t_fwd[0])


def test_hidden_layer_has_relu_last_layer_does_not() -> None:
    # Two-way pair 0 <-> 1, two layers, W = identity, no bias, no self term.
    # Layer 1: t1_1 = norm(relu(s0_0)) = norm(relu([-1, 2])) = [0, 1].
    # Layer 2: s2_0 = norm(t1_1) = [0, 1]. Without the hidden ReLU it would be norm([-1, 2]).
    # And s1_0 = norm(relu(t0_1)) = norm(relu([-2, -1])) = 0 -> t2_1 = 0.
    encoder = BladeEncoder(small_config(dim=2, num_layers=2, self_term=False), 2)
    with torch.no_grad():
        encoder.source_input.weight.copy_(torch.tensor([[-1.0, 2.0], [1.0, 1.0]]))
        encoder.target_input.weight.copy_(torch.tensor([[1.0, 0.0], [-2.0, -1.0]]))
        for linear in encoder.neighbour:
            linear.weight.copy_(torch.eye(2))
            linear.bias.zero_()
    s, t = encoder(*_adjacencies([(0, 1), (1, 0)], 2))
    torch.testing.assert_close(s[0], torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(t[1], torch.zeros(2))


def test_rows_are_unit_norm_and_may_be_negative_on_random_graph() -> None:
    torch.manual_seed(0)
    index = torch.randint(0, 50, (2, 200))
    encoder = BladeEncoder(small_config(dim=8, num_layers=2), 50)
    s, t = encoder(aggregation_matrix(index, 50), aggregation_matrix(index.flip(0), 50))
    assert s.shape == t.shape == (50, 8)
    torch.testing.assert_close(s.norm(dim=1), torch.ones(50))
    torch.testing.assert_close(t.norm(dim=1), torch.ones(50))
    assert (s < 0).any() and (t < 0).any()


def test_undirected_encoder_is_symmetric() -> None:
    torch.manual_seed(0)
    index = torch.randint(0, 20, (2, 60))
    undirected = torch.cat([index, index.flip(0)], dim=1)
    encoder = UndirectedSageEncoder(small_config(dim=8, num_layers=2), 20)
    h_s, h_t = encoder(aggregation_matrix(undirected, 20))
    torch.testing.assert_close(h_s, h_t)
    scores = score(h_s, h_t, encoder.scale)
    torch.testing.assert_close(scores, scores.T)
    torch.testing.assert_close(h_s.norm(dim=1), torch.ones(20))


def test_undirected_update_by_hand() -> None:
    # Path 0 - 1 - 2 (both directions), 1 layer, W = W_self = identity, no bias:
    # h_1 = norm(mean(h0_0, h0_2) + h0_1) = norm(([1, 0] + [0, 1]) / 2 + [1, 1]) = norm([1.5, 1.5]).
    encoder = UndirectedSageEncoder(small_config(dim=2, num_layers=1), 3)
    with torch.no_grad():
        encoder.node_input.weight.copy_(torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]))
        encoder.convs[0].lin_l.weight.copy_(torch.eye(2))  # PyG's SAGEConv: lin_l = W (with bias)
        encoder.convs[0].lin_l.bias.zero_()
        encoder.convs[0].lin_r.weight.copy_(torch.eye(2))  # lin_r = W_self
    index = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
    h, _ = encoder(aggregation_matrix(index, 3))
    torch.testing.assert_close(h[1], _unit([1.0, 1.0]))
    # h_0 = norm(h0_1 + h0_0) = norm([2, 1]).
    torch.testing.assert_close(h[0], _unit([2.0, 1.0]))
    # a pair with weight 0 (its path uses an edge the step excludes) passes no message: with
    # 1 -> 2 dropped, h_1 = norm(h0_0 + h0_1) = norm([2, 1])
    from models.batching import EpochAggregation
    aggregation = EpochAggregation(index, torch.tensor([0, 1, 2, 3]), 3)
    h, _ = encoder(aggregation.matrix(torch.tensor([False, False, True, False])))
    torch.testing.assert_close(h[1], _unit([2.0, 1.0]))
    # the last layer of a training step computes only the rows its loss reads, the same values
    from models.sparse import ComputationGraph
    graph = ComputationGraph.full(aggregation_matrix(index, 3), None, 1)
    rows = torch.tensor([2, 0])
    partial, _ = encoder.encode(ComputationGraph(graph.source_nodes, graph.target_nodes, graph.out_adj,
                                                 graph.in_adj, last_rows=rows))
    torch.testing.assert_close(partial, encoder(aggregation_matrix(index, 3))[0][rows])


def test_scale_fixed_or_learned_and_score_helpers_agree() -> None:
    fixed = BladeEncoder(small_config(dim=2, score_scale=5.0), 3)
    assert fixed.scale.item() == pytest.approx(5.0)
    assert "log_scale" not in dict(fixed.named_parameters())
    learned = BladeEncoder(small_config(dim=2, score_scale=2.0, learn_scale=True), 3)
    assert learned.scale.item() == pytest.approx(2.0)
    assert "log_scale" in dict(learned.named_parameters())

    s = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    t = torch.tensor([[0.6, 0.8], [-1.0, 0.0], [0.0, -1.0]])
    # score[u, v] = 5 * s_u . t_v: row 0 = 5 * [0.6, -1, 0], row 1 = 5 * [0.8, 0, -1].
    expected = torch.tensor([[3.0, -5.0, 0.0], [4.0, 0.0, -5.0]])
    torch.testing.assert_close(score(s, t, fixed.scale), expected)
    edges = torch.tensor([[0, 1, 1], [1, 0, 2]])
    torch.testing.assert_close(edge_score(s, t, edges, fixed.scale), torch.tensor([-5.0, 4.0, -5.0]))


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="num_layers"):
        BladeConfig(num_layers=0)
    with pytest.raises(ValueError, match="score_scale"):
        BladeConfig(score_scale=0.0)


def test_identity_weight_init_is_the_hand_set_mean_plus_self() -> None:
    by_hand = BladeEncoder(small_config(dim=2, num_layers=1), 4)
    _hand_set(by_hand, S0, T0, root=1.0)
    identity = BladeEncoder(small_config(dim=2, num_layers=1, weight_init="identity"), 4)
    with torch.no_grad():
        identity.source_input.weight.copy_(S0)
        identity.target_input.weight.copy_(T0)
    for ours, expected in zip(identity(*_adjacencies(EDGES, 4)), by_hand(*_adjacencies(EDGES, 4))):
        torch.testing.assert_close(ours, expected)
