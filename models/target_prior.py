"""The target prior's weight, refitted to the ranking of held-out edges after training.

BLADE's target prior adds ``gamma * log(1 + d_in(v))`` to every score u -> v
(:class:`models.encoder.BladeEncoder`), gamma learned with the embeddings from 0. On a graph where
popularity is most of the signal (preferential attachment: new products link to those already
linked) training stops early, before gamma has moved far, while the embeddings it stops with
know little; the popularity recommender then ranks better than the model. Within one query the
prior ranks candidates by their in-degree, so its weight is a one-parameter ranking choice like
the walk channel's lambda: :func:`fit_target_prior` tries ``gamma + shift`` for each shift of a
grid (0 among them) on the validation edges, with the evaluator's own filtered ranks, and keeps
the best MRR@10. The validation score of the embeddings never goes down, and a graph where the
learned gamma is right keeps it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from models.metrics import ScoreFn, filtered_ranks, ranking_metrics

# Shifts of gamma tried, in log(1 + in-degree) units per unit of score. Scores are
# scale * cos (scale about 10-20), so 8-16 let popularity outrank the embeddings entirely.
SHIFT_GRID = (-2.0, -1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)


def fit_target_prior(rows: ScoreFn, log_in_degree: Tensor, edges: Tensor, exclude_indptr: Tensor,
                     exclude_indices: Tensor, shifts: Sequence[float] = SHIFT_GRID,
                     chunk_size: int = 256) -> dict[str, object]:
    """The shift of the target prior's weight with the best filtered MRR@10 of ``rows`` plus
    ``shift * log_in_degree[candidate]`` on ``edges [2, E]``.

    Args:
        rows: query ids ``[B]`` -> scores ``[B, N]`` (with the current prior).
        log_in_degree: ``[N]`` ``log(1 + d_in)`` of every node in the training graph.
        edges, exclude_indptr, exclude_indices: the validation edges and the training
            out-neighbours' CSR, as :func:`models.metrics.filtered_ranks` takes them.

    Returns:
        ``{"shift", "mrr@10", "mrr@10_without", "grid": [[shift, mrr], ...]}``; ties keep the
        smallest magnitude, so 0 wins a tie.
    """
    num_nodes = log_in_degree.numel()
    grid, best = [], None
    for shift in sorted(shifts, key=abs):
        bonus = (shift * log_in_degree).to(torch.float32)

        def shifted(queries: Tensor, bonus: Tensor = bonus) -> Tensor:
            return rows(queries) + bonus

        ranks = filtered_ranks(shifted if shift else rows, edges[0], edges[1], exclude_indptr,
                               exclude_indices, num_nodes, chunk_size)
        mrr = ranking_metrics(ranks, (10,))["mrr@10"]
        grid.append([shift, round(mrr, 6)])
        if best is None or mrr > best[1] + 1e-9:
            best = [shift, mrr]
    without = next(mrr for shift, mrr in grid if shift == 0.0)
    return {"shift": best[0], "mrr@10": round(best[1], 6), "mrr@10_without": without,
            "grid": sorted(grid)}


__all__ = ["SHIFT_GRID", "fit_target_prior"]
