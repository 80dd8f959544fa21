"""Loss tests on two or three nodes with 1-d embeddings, so every score is a product we choose."""

from __future__ import annotations

import math

import pytest
import torch

from models.batching import aggregation_matrix
from models.encoder import BladeEncoder, edge_score
from models.loss import blade_loss
from tests.test_encoder import small_config


def neg_log_sigmoid(x: float) -> float:
    """-log sigma(x) = -log(1 / (1 + exp(-x))), the reference the loss must match."""
    return -math.log(1.0 / (1.0 + math.exp(-x)))


# Two nodes, d = 1: s_0 . t_1 = 2 * 1 = 2 (0 -> 1 is plausible), s_1 . t_0 = 1 * -1.5 = -1.5.
S = torch.tensor([[2.0], [1.0]])
T = torch.tensor([[-1.5], [1.0]])
NO_NEGATIVES = torch.empty(1, 0, dtype=torch.long)


def _loss(edge: list[int], one_way: bool, s=S, t=T, negatives=NO_NEGATIVES, **kwargs):
    return blade_loss(s, t, torch.tensor([edge]).T, negatives, torch.tensor([one_way]), **kwargs)


def test_asymmetric_term_small_for_the_right_direction_large_for_the_wrong_one() -> None:
    right = _loss([0, 1], one_way=True)
    # 0 -> 1: -log s(2) - log s(1.5) = 0.1269 + 0.2014 = 0.3283.
    assert right.asymmetric.item() == pytest.approx(neg_log_sigmoid(2.0) + neg_log_sigmoid(1.5))
    wrong = _loss([1, 0], one_way=True)
    # 1 -> 0: -log s(-1.5) - log s(-2) = 1.7014 + 2.1269 = 3.8283.
    assert wrong.asymmetric.item() == pytest.approx(neg_log_sigmoid(-1.5) + neg_log_sigmoid(-2.0))
    assert wrong.asymmetric.item() > 10 * right.asymmetric.item()


def test_two_way_edge_has_no_asymmetric_term() -> None:
    terms = _loss([0, 1], one_way=False)
    assert terms.asymmetric.item() == 0.0
    assert terms.total.item() == pytest.approx(neg_log_sigmoid(2.0))


def test_positive_term_value_and_monotone_in_score() -> None:
    # L_pos = -log s(x) with x = s_0 . t_1 = a * 1 for s_0 = a.
    values = []
    for a in (-2.0, 0.0, 1.0, 3.0):
        terms = _loss([0, 1], one_way=False, s=torch.tensor([[a], [1.0]]))
        assert terms.positive.item() == pytest.approx(neg_log_sigmoid(a))
        values.append(terms.positive.item())
    assert values == sorted(values, reverse=True)  # decreasing as s_u . t_v grows


def test_negative_term_value_and_monotone_in_score() -> None:
    # Edge 0 -> 1 with negatives w = 2 and w = 2 again: L_neg = 2 * -log s(-s_0 . t_2).
    negatives = torch.tensor([[2, 2]])
    values = []
    for b in (-2.0, 0.0, 1.0, 3.0):
        t = torch.tensor([[-1.5], [1.0], [b]])
        terms = _loss([0, 1], one_way=False, s=torch.tensor([[2.0], [1.0], [0.0]]), t=t, negatives=negatives)
        assert terms.negative.item() == pytest.approx(2 * neg_log_sigmoid(-2.0 * b))
        values.append(terms.negative.item())
    assert values == sorted(values)  # increasing as s_u . t_w grows


def test_scale_multiplies_every_score() -> None:
    terms = _loss([0, 1], one_way=True, scale=3.0)
    assert terms.positive.item() == pytest.approx(neg_log_sigmoid(6.0))
    assert terms.asymmetric.item() == pytest.approx(neg_log_sigmoid(6.0) + neg_log_sigmoid(4.5))


def test_total_is_the_mean_of_the_terms() -> None:
    # Batch: 0 -> 1 (one-way) and 1 -> 0 (two-way), one negative each (w = 1, w = 0).
    pos = torch.tensor([[0, 1], [1, 0]])
    neg = torch.tensor([[1], [0]])
    one_way = torch.tensor([True, False])
    per_edge = [
        neg_log_sigmoid(2.0) + neg_log_sigmoid(-2.0) + 0.5 * (neg_log_sigmoid(2.0) + neg_log_sigmoid(1.5)),
        neg_log_sigmoid(-1.5) + neg_log_sigmoid(1.5),  # negative w = 0: s_1 . t_0 = -1.5
    ]
    plain = blade_loss(S, T, pos, neg, one_way, lambda_asym=0.5)
    assert plain.total.item() == pytest.approx(sum(per_edge) / 2)
    assert plain.total.item() == pytest.approx(
        (plain.positive + plain.negative + 0.5 * plain.asymmetric).item()
    )


def test_gradient_signs() -> None:
    # s_0 = x, t_1 = 1: d L / d x = d L / d (s_0 . t_1).
    s = torch.tensor([[0.5], [0.0]], requires_grad=True)
    t = torch.tensor([[0.0], [1.0]])
    _loss([0, 1], one_way=False, s=s, t=t).positive.backward()
    assert s.grad[0, 0] < 0  # raising the positive score lowers L_pos
    # Negative w = 1 for the edge 0 -> 0 (the edge itself is irrelevant to L_neg).
    s = torch.tensor([[0.5], [0.0]], requires_grad=True)
    _loss([0, 0], one_way=False, s=s, t=t, negatives=torch.tensor([[1]])).negative.backward()
    assert s.grad[0, 0] > 0  # raising a negative's score raises L_neg
    # The asymmetric term pushes the reverse score s_1 . t_0 down: with t_0 = 1, d L_asym / d s_1
    # = sigma(s_1 . t_0) * t_0 > 0, so gradient descent lowers s_1.
    s = torch.tensor([[0.5], [0.5]], requires_grad=True)
    t = torch.tensor([[1.0], [1.0]])
    _loss([0, 1], one_way=True, s=s, t=t).asymmetric.backward()
    assert s.grad[1, 0] > 0


def test_shape_errors() -> None:
    with pytest.raises(ValueError, match="neg_targets"):
        blade_loss(S, T, torch.tensor([[0], [1]]), torch.zeros(2, 1, dtype=torch.long), torch.tensor([True]))
    with pytest.raises(ValueError, match="one_way"):
        blade_loss(S, T, torch.tensor([[0], [1]]), NO_NEGATIVES, torch.tensor([True, False]))


def test_training_learns_direction_on_a_chain() -> None:
    # 0 -> 1 -> 2 -> 3, ID embeddings, full neighbourhoods, 200 Adam steps on all edges.
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    edges = torch.tensor([[0, 1, 2], [1, 2, 3]])
    out_adj = aggregation_matrix(edges, 4)
    in_adj = aggregation_matrix(edges.flip(0), 4)
    encoder = BladeEncoder(small_config(dim=8, num_layers=2, score_scale=5.0), 4)
    optimiser = torch.optim.Adam(encoder.parameters(), lr=0.02)
    one_way = torch.ones(3, dtype=torch.bool)
    for _ in range(200):
        s, t = encoder(out_adj, in_adj)
        negatives = torch.randint(0, 4, (3, 2), generator=generator)
        loss = blade_loss(s, t, edges, negatives, one_way, scale=encoder.scale).total
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        s, t = encoder(out_adj, in_adj)
        forward = edge_score(s, t, edges, encoder.scale)
        reverse = edge_score(s, t, edges.flip(0), encoder.scale)
    assert (forward > reverse + 1.0).all(), (forward, reverse)
