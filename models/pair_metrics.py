"""Metrics of pairs rather than of one query's ranking: direction AUC (u -> v against v -> u on
one-way edges) and the global link metric (held-out edges against one pool of uniform non-edges,
OGB's rule), with the one-way mask and the non-edge pool they are taken on."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from models.graph import reverse_exists


def direction_auc(pos_scores: torch.Tensor, neg_scores: torch.Tensor) -> float:
    r"""ROC AUC of positives against negatives (Mann-Whitney U, ties count 1/2).

    For direction prediction over one-way test edges (u, v): positives s_u . t_v, negatives the
    reversed s_v . t_u. With n+ positives, n- negatives and R+ the sum of the positives' mid-ranks
    in the pooled ascending order,

    .. math::
        \mathrm{AUC} = \frac{R_+ - n_+ (n_+ + 1) / 2}{n_+ n_-}
                     = P(x_+ > x_-) + \tfrac12 P(x_+ = x_-).

    Args:
        pos_scores: ``[n+]``; neg_scores: ``[n-]`` (need not be paired).

    Returns:
        AUC in [0, 1]; nan if either side is empty.
    """
    n_pos, n_neg = pos_scores.numel(), neg_scores.numel()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    pooled = torch.cat([pos_scores.reshape(-1), neg_scores.reshape(-1)]).double()
    values, inverse, counts = torch.unique(pooled, return_inverse=True, return_counts=True)
    # mid-rank of a tie group occupying ascending ranks first..first + count - 1
    first = counts.cumsum(0) - counts + 1
    mid_rank = first.double() + (counts.double() - 1.0) / 2.0
    rank_sum = float(mid_rank[inverse[:n_pos]].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


GLOBAL_KS = (20, 50, 100)


def global_link_metrics(pos_scores: torch.Tensor, neg_scores: torch.Tensor,
                        ks: Iterable[int] = GLOBAL_KS) -> dict[str, float]:
    r"""Pairs of *different* queries compared: held-out edges against one shared pool of non-edges.

    OGB's rule (Hu et al. 2020, ogbl-collab): Hits@K is the share of positive edges that score
    strictly above the K-th best negative of the pool,

    .. math::
        \mathrm{Hits@K} = \frac{1}{n_+} \#\{i : x^+_i > x^-_{(K)}\},

    and AUC the Mann-Whitney AUC of all positives against all negatives. Unlike per-query
    ranking, these change when a score adds a term that depends on the query only: they ask
    whether one number means "related" the same way for every query (a threshold, merged lists).

    Args:
        pos_scores: ``[n+]`` scores of held-out edges; neg_scores: ``[n-]`` of the pool.

    Returns:
        ``{"auc": ..., "hits@K": ... for K in ks}``; Hits@K is 1 when the pool has < K negatives.
    """
    metrics = {"auc": direction_auc(pos_scores, neg_scores)}
    ordered = torch.sort(neg_scores.reshape(-1).double(), descending=True).values
    positives = pos_scores.reshape(-1).double()
    for k in ks:
        threshold = ordered[k - 1] if ordered.numel() >= k else -torch.inf
        above = (positives > threshold).double()
        metrics[f"hits@{k}"] = float(above.mean()) if positives.numel() else float("nan")
    return metrics


def uniform_non_edges(all_edges: torch.Tensor, num_nodes: int, count: int, seed: int) -> torch.Tensor:
    """``[2, count]`` seeded uniform pairs u != v that are no edge of ``all_edges`` (either split).

    The shared negative pool of :func:`global_link_metrics`. Draws in rounds until ``count``
    distinct pairs are found (a sparse graph needs about one round).
    """
    if num_nodes < 2:
        return torch.zeros((2, 0), dtype=torch.long)
    generator = torch.Generator().manual_seed(seed)
    known = torch.unique(all_edges[0].to(torch.long) * num_nodes + all_edges[1].to(torch.long))
    found = torch.zeros(0, dtype=torch.long)
    possible = num_nodes * (num_nodes - 1) - known.numel()
    count = min(count, max(possible, 0))
    while found.numel() < count:
        pairs = torch.randint(0, num_nodes, (2, 2 * count + 16), generator=generator)
        key = pairs[0] * num_nodes + pairs[1]
        position = torch.searchsorted(known, key).clamp(max=max(known.numel() - 1, 0))
        is_edge = (known[position] == key) if known.numel() else torch.zeros_like(key, dtype=torch.bool)
        key = key[(pairs[0] != pairs[1]) & ~is_edge]
        fresh = key[~torch.isin(key, found)]
        # keep the first occurrence of each new pair, in draw order
        unique, inverse = torch.unique(fresh, return_inverse=True)
        first = torch.full((unique.numel(),), fresh.numel(), dtype=torch.long)
        first.scatter_reduce_(0, inverse, torch.arange(fresh.numel()), reduce="amin")
        found = torch.cat([found, fresh[first.sort().values]])
    found = found[:count]
    return torch.stack([found // num_nodes, found % num_nodes])


def one_way_mask(edges: torch.Tensor, all_edges: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """True where edge (u, v) of ``edges [2, Q]`` has no reverse (v, u) in ``all_edges [2, E]``.

    Pass the whole clean graph (all splits) as ``all_edges``: an edge whose reverse is held out
    is still two-way. Self-loops count as two-way. Returns BoolTensor ``[Q]``.
    """
    return ~reverse_exists(edges.to(torch.long), all_edges.to(torch.long), num_nodes)


__all__ = ["GLOBAL_KS", "direction_auc", "global_link_metrics", "one_way_mask", "uniform_non_edges"]
