import math

import pytest
import torch

from models.power_law import (
    adaptive_sizes,
    effective_alpha,
    fit_power_law_alpha,
    neighbourhood_sizes,
)


def test_alpha_hat_matches_hand_computation():
    # in-degrees 0, 0, 1, 2, 4 with d_min = 1: the zeros are outside the tail.
    # alpha = 1 + 3 / (ln 1 + ln 2 + ln 4) = 1 + 3 / (3 ln 2) = 1 + 1/ln 2 = 2.442695...
    degrees = torch.tensor([0, 0, 1, 2, 4])
    assert fit_power_law_alpha(degrees, d_min=1) == pytest.approx(1 + 1 / math.log(2))
    # d_min = 2: tail {2, 4}: alpha = 1 + 2 / (ln 1 + ln 2) = 1 + 2/ln 2 = 3.885390...
    assert fit_power_law_alpha(degrees, d_min=2) == pytest.approx(1 + 2 / math.log(2))


def test_alpha_hat_rejects_degenerate_d_min_zero_and_flat_tail():
    with pytest.raises(ValueError, match="d_min"):
        fit_power_law_alpha(torch.tensor([0, 1, 2]), d_min=0)
    with pytest.raises(ValueError, match="infinite"):
        fit_power_law_alpha(torch.tensor([0, 1, 1]), d_min=1)
    with pytest.raises(ValueError, match="empty"):
        fit_power_law_alpha(torch.tensor([0, 0]), d_min=1)


def test_neighbourhood_sizes_follow_the_tail_probability():
    # n_max = 8, alpha = 2, d_min = 1: n_u = ceil(8 * max(d, 1) ** -1)
    # d = 0 -> 8 (rare node: widest), 1 -> 8, 2 -> 4, 3 -> ceil(2.67) = 3, 4 -> 2 -> n_min 3, 100 -> 3
    in_degree = torch.tensor([0, 1, 2, 3, 4, 100])
    sizes = neighbourhood_sizes(in_degree, alpha=2.0, d_min=1, n_min=3, n_max=8)
    assert sizes.tolist() == [8, 8, 4, 3, 3, 3]
    # alpha = 1: every node gets n_max (no adaptivity)
    assert neighbourhood_sizes(in_degree, 1.0, 1, 3, 8).tolist() == [8] * 6


def test_neighbourhood_sizes_validate_bounds():
    with pytest.raises(ValueError, match="n_min"):
        neighbourhood_sizes(torch.tensor([1]), 2.0, 1, n_min=5, n_max=4)


def test_effective_alpha_prefers_explicit_value():
    # the multiplier scales alpha_hat - 1: 1 + 1.5 * (2 - 1) = 2.5
    assert effective_alpha(None, 1.5, 2.0) == pytest.approx(2.5)
    assert effective_alpha(None, 1.0, 1.4) == pytest.approx(1.4)  # multiplier 1: alpha_hat
    assert effective_alpha(3.0, 1.5, 2.0) == pytest.approx(3.0)
    with pytest.raises(ValueError, match=">= 1"):
        effective_alpha(0.8, 1.0, 2.0)  # an explicit alpha below 1


def test_every_multiplier_keeps_alpha_above_one_even_when_alpha_hat_is_near_one():
    # alpha_hat 1.05 (a flat tail): the old alpha_multiplier * alpha_hat gave 0.525 at 0.5
    for multiplier in (0.01, 0.5, 1.0, 2.0, 10.0):
        assert effective_alpha(None, multiplier, 1.05) > 1.0


def test_adaptive_sizes_fit_alpha_from_the_degrees():
    # in-degrees 0, 0, 1, 2, 4: alpha_hat = 1 + 1/ln 2 (above), so 1 - alpha = -1/ln 2 and
    # (d / 1) ** (1 - alpha) = e ** (-ln d / ln 2): d 2 -> 1/e, d 4 -> 1/e^2.
    # n_max = 8: d <= 1 -> 8; d 2 -> ceil(8/e = 2.94) = 3; d 4 -> ceil(8/e^2 = 1.08) = 2.
    sizes, alpha_hat, alpha_used = adaptive_sizes(
        torch.tensor([0, 0, 1, 2, 4]), d_min=1, alpha=None, alpha_multiplier=1.0, n_min=1, n_max=8)
    assert alpha_hat == pytest.approx(1 + 1 / math.log(2))
    assert alpha_used == pytest.approx(alpha_hat)
    assert sizes.tolist() == [8, 8, 8, 3, 2]
