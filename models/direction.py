"""Direction calibration: the source prior's weight, fitted to held-out one-way edges.

With a source prior every score u -> v gets ``+ delta * log(1 + d_in(u))``
(:class:`models.encoder.BladeEncoder`). Within one query u that is a constant, so it changes no
ranking; it only moves u -> v against v -> u. Direction AUC over one-way edges (u, v) compares
positives ``x(u, v) + delta * l_u`` with negatives ``x(v, u) + delta * l_v`` (``l = log(1 +
d_in)``, x the score without the source prior), a one-parameter problem: we try a grid of
deltas and keep the best. A negative delta says "a popular node is rarely the source of a one-way
edge"; with it the model can reach and pass the popularity baseline's direction AUC while its
rankings stay those the embeddings learned.
"""

from __future__ import annotations

from torch import Tensor

from models.metrics import direction_auc

# Candidate deltas: 0, then +-2^k for k = -3 .. 8 (0.125 .. 256).
DELTA_GRID = (0.0, *(sign * 2.0**k for k in range(-3, 9) for sign in (-1.0, 1.0)))


def fit_source_prior(forward: Tensor, backward: Tensor, log_in_degree_u: Tensor,
                     log_in_degree_v: Tensor, delta: float) -> dict[str, float]:
    """The delta of :data:`DELTA_GRID` (or the current one) with the best direction AUC.

    Args:
        forward, backward: ``[P]`` scores u -> v and v -> u of P one-way edges, each including
            the current source prior ``delta * log(1 + d_in(source))``.
        log_in_degree_u, log_in_degree_v: ``[P]`` ``log(1 + d_in)`` of u and of v.
        delta: the current weight.

    Returns:
        ``{"delta": chosen, "auc": its AUC, "delta_before": delta, "auc_before": AUC before}``;
        ties keep the current delta, then the smallest magnitude.
    """
    forward = forward - delta * log_in_degree_u  # x(u, v) without the source prior
    backward = backward - delta * log_in_degree_v

    def auc(candidate: float) -> float:
        return direction_auc(forward + candidate * log_in_degree_u, backward + candidate * log_in_degree_v)

    before = auc(delta)
    best, best_auc = delta, before
    for candidate in sorted(DELTA_GRID, key=abs):
        value = auc(candidate)
        if value > best_auc + 1e-9:
            best, best_auc = candidate, value
    return {"delta": best, "auc": best_auc, "delta_before": delta, "auc_before": before}
