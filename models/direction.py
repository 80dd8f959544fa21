"""Direction calibration: the source prior's weight, fitted to held-out one-way edges.

With a source prior every score u -> v gets ``+ delta * log(1 + d_in(u))``
(:class:`models.encoder.BladeEncoder`). Within one query u that is a constant, so it changes no
ranking; it only moves u -> v against v -> u. Direction AUC over one-way edges (u, v) compares
positives ``x(u, v) + delta * l_u`` with negatives ``x(v, u) + delta * l_v`` (``l = log(1 +
d_in)``, x the score without the source prior), a one-parameter problem: we try a grid of
deltas and keep the best. A negative delta says "a popular node is rarely the source of a one-way
edge"; with it the model can reach and pass the popularity baseline's direction AUC while its
rankings stay those the embeddings learned.

A query term does move comparisons *across* queries, which is what a threshold on "related
enough to show" or a merged list relies on: with a large negative delta every pair with a
popular source sinks. So the calibration is constrained: given held-out edges and a pool of
non-edges, a delta is admissible only if the global link metric (AUC and Hits@50 of the edges
against the pool, :func:`models.metrics.global_link_metrics`) is not below the current delta's.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from models.pair_metrics import direction_auc, global_link_metrics

# Candidate deltas: 0, then +-2^k for k = -3 .. 8 (0.125 .. 256).
DELTA_GRID = (0.0, *(sign * 2.0**k for k in range(-3, 9) for sign in (-1.0, 1.0)))


GLOBAL_CHECK = ("auc", "hits@50")  # what a calibrated delta must not lower


def fit_source_prior(forward: Tensor, backward: Tensor, log_in_degree_u: Tensor,
                     log_in_degree_v: Tensor, delta: float,
                     linked: tuple[Tensor, Tensor] | None = None,
                     unlinked: tuple[Tensor, Tensor] | None = None) -> dict[str, float]:
    """The delta of :data:`DELTA_GRID` (or the current one) with the best direction AUC.

    Args:
        forward, backward: ``[P]`` scores u -> v and v -> u of P one-way edges, each including
            the current source prior ``delta * log(1 + d_in(source))``.
        log_in_degree_u, log_in_degree_v: ``[P]`` ``log(1 + d_in)`` of u and of v.
        delta: the current weight.
        linked, unlinked: optional ``(scores [M], log(1 + d_in(source)) [M])`` of held-out
            edges and of a pool of non-edges (scores including the current source prior); with
            them only deltas whose global link metric is not below the current one's compete.

    Returns:
        ``{"delta": chosen, "auc": its AUC, "delta_before": delta, "auc_before": AUC before,
        "rejected": deltas with a better direction AUC that the global check turned down}``;
        ties keep the current delta, then the smallest magnitude.
    """
    forward = forward - delta * log_in_degree_u  # x(u, v) without the source prior
    backward = backward - delta * log_in_degree_v

    def auc(candidate: float) -> float:
        return direction_auc(forward + candidate * log_in_degree_u, backward + candidate * log_in_degree_v)

    check = None
    if linked is not None and unlinked is not None:
        positive = linked[0] - delta * linked[1]
        negative = unlinked[0] - delta * unlinked[1]

        def check(candidate: float) -> tuple[float, ...]:
            metrics = global_link_metrics(positive + candidate * linked[1],
                                          negative + candidate * unlinked[1])
            return tuple(metrics[key] for key in GLOBAL_CHECK)

        floor = check(delta)
    before = auc(delta)
    best, best_auc, rejected = delta, before, 0
    for candidate in sorted(DELTA_GRID, key=abs):
        value = auc(candidate)
        if value > best_auc + 1e-9:
            if check is not None and any(a < b - 1e-12 for a, b in zip(check(candidate), floor)):
                rejected += 1
                continue
            best, best_auc = candidate, value
    return {"delta": best, "auc": best_auc, "delta_before": delta, "auc_before": before,
            "rejected": rejected}


def calibrate_pairs(pairs: Callable[[Tensor, Tensor], Tensor], one_way: Tensor, linked: Tensor,
                    unlinked: Tensor, in_degree: Tensor) -> tuple[Callable[[Tensor, Tensor], Tensor],
                                                                dict[str, float]]:
    """The same calibration for a method without a source prior (a baseline): fit delta
    (starting from 0) on validation one-way edges ``one_way [2, P]``, with the global check on
    validation edges ``linked [2, M]`` against non-edges ``unlinked [2, M]``.

    Returns ``(pairs + delta * log(1 + d_in(u)), fit)``; rankings of one query do not change.
    """
    log_in = torch.log1p(in_degree.to(torch.float32))
    u, v = one_way
    (a, b), (c, d) = linked, unlinked
    fit = fit_source_prior(pairs(u, v), pairs(v, u), log_in[u], log_in[v], 0.0,
                           (pairs(a, b), log_in[a]), (pairs(c, d), log_in[c]))
    delta = fit["delta"]
    if delta == 0.0:
        return pairs, fit
    return (lambda x, y: pairs(x, y) + delta * log_in[x.to(torch.long)]), fit
