"""Power-law fit of the in-degree distribution and the per-node neighbourhood sizes n_u.

The "locally adaptive" part of BLADE: a node's neighbourhood size follows the tail probability of
the fitted power law, so rare (low in-degree) nodes get large neighbourhoods and hubs small ones.
"""

from __future__ import annotations

import torch


def fit_power_law_alpha(degrees: torch.Tensor, d_min: int = 1) -> float:
    """Maximum-likelihood power-law exponent over the tail ``d >= d_min`` (Clauset et al. 2009).

        alpha_hat = 1 + n / sum_{i: d_i >= d_min} ln(d_i / d_min)

    Args:
        degrees: ``[num_nodes]`` integer degrees (any node, zeros allowed: they are outside the tail).
        d_min: lower bound of the tail; must be >= 1 (d_min = 0 degenerates to alpha = 1).

    Returns:
        alpha_hat as a float. Raises ``ValueError`` if the tail is empty or all at d_min
        (the estimate is then infinite).
    """
    if d_min < 1:
        raise ValueError(f"d_min must be >= 1 (got {d_min}); d_min = 0 degenerates to alpha = 1")
    tail = degrees[degrees >= d_min].to(torch.float64)
    if tail.numel() == 0:
        raise ValueError(f"no node has degree >= d_min = {d_min}: the power-law tail is empty")
    log_sum = torch.log(tail / d_min).sum().item()
    if log_sum <= 0.0:
        raise ValueError(f"every tail degree equals d_min = {d_min}: alpha_hat is infinite")
    return 1.0 + tail.numel() / log_sum


def neighbourhood_sizes(
    in_degree: torch.Tensor, alpha: float, d_min: int, n_min: int, n_max: int
) -> torch.Tensor:
    """Per-node neighbourhood size from the power-law tail probability P(D >= d).

        n_u = clip( ceil( n_max * (max(d_in(u), d_min) / d_min) ** (1 - alpha) ), n_min, n_max )

    Args:
        in_degree: ``[num_nodes]`` in-degrees on the training graph.
        alpha: power-law exponent (> 1 shrinks hubs' neighbourhoods; alpha = 1 gives n_max to all).
        d_min, n_min, n_max: see the method doc; 1 <= n_min <= n_max.

    Returns:
        ``[num_nodes]`` LongTensor of sizes in [n_min, n_max].
    """
    if not 1 <= n_min <= n_max:
        raise ValueError(f"need 1 <= n_min <= n_max, got n_min={n_min}, n_max={n_max}")
    if d_min < 1:
        raise ValueError(f"d_min must be >= 1 (got {d_min})")
    ratio = in_degree.to(torch.float64).clamp(min=d_min) / d_min
    raw = n_max * ratio.pow(1.0 - alpha)
    # Guard float noise such as 3.0000000000000004 -> 4 before the ceiling.
    sizes = torch.ceil(raw - 1e-9).to(torch.long)
    return sizes.clamp(min=n_min, max=n_max)


def power_law_ccdf(d: torch.Tensor, alpha: float, d_min: int) -> torch.Tensor:
    """Tail probability P(D >= d | D >= d_min) = (d / d_min) ** (1 - alpha) of the fitted law."""
    return (d.to(torch.float64) / d_min).pow(1.0 - alpha)





def effective_alpha(alpha: float | None, alpha_multiplier: float, alpha_hat: float) -> float:
    """The exponent n_u uses: an explicit ``alpha``, else ``1 + alpha_multiplier * (alpha_hat - 1)``.

    The multiplier scales the tail's steepness above 1 (alpha_hat = 1 + n / sum ln(d / d_min) is
    always above 1), so every multiplier > 0 gives a decreasing tail: a search over it can never
    leave the valid region, whatever the graph's alpha_hat. Multiplier 1 is alpha_hat itself."""
    if alpha is not None:
        value = float(alpha)
    else:
        if alpha_multiplier <= 0:
            raise ValueError(f"alpha_multiplier must be > 0, got {alpha_multiplier}")
        value = 1.0 + float(alpha_multiplier) * (alpha_hat - 1.0)
    if value < 1.0:
        raise ValueError(f"alpha must be >= 1 for a decreasing tail, got {value:.3f}")
    return value


def adaptive_sizes(
    in_degree: torch.Tensor,
    *,
    d_min: int,
    alpha: float | None,
    alpha_multiplier: float,
    n_min: int,
    n_max: int,
    alpha_hat: float | None = None,
) -> tuple[torch.Tensor, float, float]:
    """n_u for every node from its training in-degree: fit alpha_hat (unless given: the degree
    statistics' fit of the same degrees), pick alpha, size.

    Returns ``(sizes [num_nodes], alpha_hat, alpha_used)``; see :func:`effective_alpha`.
    """
    if alpha_hat is None:
        alpha_hat = fit_power_law_alpha(in_degree, d_min)
    alpha_used = effective_alpha(alpha, alpha_multiplier, alpha_hat)
    return neighbourhood_sizes(in_degree, alpha_used, d_min, n_min, n_max), alpha_hat, alpha_used
