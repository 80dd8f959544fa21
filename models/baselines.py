"""Non-learned baselines as :data:`models.metrics.ScoreFn`, scored by the same filtered evaluator.

- popularity: recommend what most products lead to (training in-degree), whatever the query;
- 2-hop co-occurrence: "products bought with products bought with q", the count of training
  paths q -> a -> x, with popularity breaking its ties.

Both read the training graph only. Typical use::

    score_fn = cooccurrence_scores(train_edge_index, num_nodes)
    ranks = filtered_ranks(score_fn, test[0], test[1], indptr, indices, num_nodes)
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from models.metrics import ScoreFn


def popularity_scores(in_degree: torch.Tensor) -> ScoreFn:
    """score(q, x) = d_in(x) on the training graph: one row, the same for every query.

    Args:
        in_degree: ``[N]`` training in-degrees.

    Returns:
        ScoreFn: query ids ``[B]`` -> float32 ``[B, N]`` (a fresh tensor, safe to modify).
    """
    row = in_degree.to(torch.float32).reshape(1, -1)

    def score(queries: torch.Tensor) -> torch.Tensor:
        return row.expand(queries.numel(), -1).clone()

    return score


def cooccurrence_scores(edge_index: torch.Tensor, num_nodes: int) -> ScoreFn:
    r"""2-hop co-occurrence with a popularity tie-break.

    With A the binary adjacency of the training graph (A_{ua} = 1 iff u -> a; parallel edges
    count once) and d_in(x) = sum_u A_{ux} its in-degree,

    .. math::
        \mathrm{score}(q, x) = (A A)_{qx} + \varepsilon\, d_{in}(x), \qquad
        \varepsilon = \frac{1}{2\,(\max_y d_{in}(y) + 1)}

    (A A)_{qx} counts the paths q -> a -> x. The tie-break term lies in [0, 1/2), so it orders
    nodes with equal path counts (in particular the many with none) by popularity but never
    overturns a count difference, which is at least 1; float32 rounding keeps that true for
    every count below 2**24 (all exact). The tie-break itself survives float32 only while the
    spacing at the count, about count * 2**-23, is below eps (on amazon0302 counts up to ~10^4);
    beyond that equal counts tie and get mid-ranks.

    Rows are computed on demand per chunk as the sparse product A[q] @ A (scipy CSR), so the
    full A @ A is never materialised.

    Args:
        edge_index: ``[2, E]`` training edges u -> v.
        num_nodes: N.

    Returns:
        ScoreFn: query ids ``[B]`` -> float32 ``[B, N]`` (a fresh tensor).
    """
    source = edge_index[0].to(torch.long).numpy()
    target = edge_index[1].to(torch.long).numpy()
    adjacency = sp.csr_matrix(
        (np.ones(source.size, dtype=np.float32), (source, target)), shape=(num_nodes, num_nodes)
    )
    adjacency.sum_duplicates()
    adjacency.data[:] = 1.0  # binary: a parallel edge is not a second path
    # in-degree of the same binary graph, so that a parallel edge counts once here too
    in_degree = np.asarray(adjacency.sum(axis=0), dtype=np.float64).reshape(-1)
    eps = 0.5 / (in_degree.max(initial=0.0) + 1.0)
    tie_break = torch.from_numpy(in_degree * eps).to(torch.float32).reshape(1, -1)

    def score(queries: torch.Tensor) -> torch.Tensor:
        paths = (adjacency[queries.to(torch.long).numpy()] @ adjacency).tocoo()
        scores = tie_break.expand(queries.numel(), -1).clone()
        rows = torch.from_numpy(paths.row.astype(np.int64))
        cols = torch.from_numpy(paths.col.astype(np.int64))
        counts = torch.from_numpy(paths.data.astype(np.float32))
        scores.index_put_((rows, cols), counts, accumulate=True)
        return scores

    return score


__all__ = ["cooccurrence_scores", "popularity_scores"]
