"""Non-learned baselines as :data:`models.metrics.ScoreFn`, scored by the same filtered evaluator.

- popularity: recommend what most products lead to (training in-degree), whatever the query;
- 2-hop co-occurrence: "products bought with products bought with q", the count of training
  paths q -> a -> x, with popularity breaking its ties.

Both read the training graph only. Typical use::

    score_fn = cooccurrence_scores(train_edge_index, num_nodes)
    ranks = filtered_ranks(score_fn, test[0], test[1], indptr, indices, num_nodes)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from models.metrics import ScoreFn, filtered_ranks, mrr_at_k


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
    spacing at the count, about count * 2**-23, is below eps (counts up to ~10^4 on a 1M-edge graph);
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

    columns = adjacency.T.tocsr()

    def score(queries: torch.Tensor) -> torch.Tensor:
        paths = (adjacency[queries.to(torch.long).numpy()] @ adjacency).tocoo()
        scores = tie_break.expand(queries.numel(), -1).clone()
        rows = torch.from_numpy(paths.row.astype(np.int64))
        cols = torch.from_numpy(paths.col.astype(np.int64))
        counts = torch.from_numpy(paths.data.astype(np.float32))
        scores.index_put_((rows, cols), counts, accumulate=True)
        return scores

    def pairs(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """score(u_i -> v_i) = A[u_i] . A[:, v_i] + tie-break, without the full rows."""
        us, vs = u.to(torch.long).numpy(), v.to(torch.long).numpy()
        counts = np.asarray(adjacency[us].multiply(columns[vs]).sum(axis=1), dtype=np.float32).reshape(-1)
        return torch.from_numpy(counts) + tie_break[0, v.to(torch.long)]

    score.pairs = pairs  # type: ignore[attr-defined]
    return score


# --- training-free graph recommenders (Dacrema et al., RecSys 2019: hard to beat) -------------
#
# Each scores a query's row as a sparse vector over the nodes (walk probabilities, path weights,
# similarities); nodes the row does not reach fall back to popularity, below every reached node:
# score = row value (> 0) where reached, else -1 + d_in(x) / (max d_in + 1), in (-1, 0).


def binary_adjacency(edge_index: torch.Tensor, num_nodes: int, symmetric: bool) -> sp.csr_matrix:
    """A (A_{uv} = 1 iff u -> v, parallel edges once), or A + A^T made binary when ``symmetric``."""
    source = edge_index[0].to(torch.long).numpy()
    target = edge_index[1].to(torch.long).numpy()
    if symmetric:
        source, target = np.concatenate([source, target]), np.concatenate([target, source])
    adjacency = sp.csr_matrix(
        (np.ones(source.size, dtype=np.float32), (source, target)), shape=(num_nodes, num_nodes))
    adjacency.sum_duplicates()
    adjacency.data[:] = 1.0
    return adjacency


def transition_matrix(adjacency: sp.csr_matrix, alpha: float = 1.0) -> sp.csr_matrix:
    """P = D_out^{-1} A with every entry raised to ``alpha`` (alpha 1: the random-walk matrix)."""
    out_degree = np.asarray(adjacency.sum(axis=1), dtype=np.float64).reshape(-1)
    inverse = np.zeros_like(out_degree)
    np.divide(1.0, out_degree, out=inverse, where=out_degree > 0)
    transition = sp.diags(inverse) @ adjacency
    transition = transition.tocsr().astype(np.float32)
    if alpha != 1.0:
        transition.data = np.power(transition.data, alpha, dtype=np.float32)
    return transition


def popularity_fallback(edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """``[1, N]`` scores in (-1, 0): -1 + d_in(x) / (max d_in + 1), the unreached nodes' order."""
    in_degree = torch.bincount(edge_index[1].to(torch.long), minlength=num_nodes).double()
    largest = float(in_degree.max()) if num_nodes else 0.0
    return (-1.0 + in_degree / (largest + 1.0)).to(torch.float32).reshape(1, -1)


class SparseRecommender:
    r"""A training-free recommender whose score is a sum of sparse matrix products.

    .. math::
        \mathrm{raw}(q, x) = c_x \sum_t w_t\, (L_t[q]\, R_t)_x

    ``factors(q)`` gives the terms ``(w_t, L_t[q] [B, N] sparse, R_t [N, N] sparse)``; ``c`` is
    an optional per-target scale (RP3beta's popularity penalty). Rows (every x) multiply out
    ``L_t[q] R_t``; pairs (one x per query) take the dot product of ``L_t[u]`` with column x of
    ``R_t`` instead, so a pair costs one step less of the walk. Where raw <= 0 (the walk does not
    reach x) the score is the popularity fallback. Callable: ``recommender(queries)`` is
    :meth:`rows`, a :data:`models.metrics.ScoreFn`.
    """

    def __init__(self, factors: Callable[[np.ndarray], list[tuple[float, sp.spmatrix, sp.csr_matrix]]],
                 fallback: torch.Tensor, column_scale: np.ndarray | None = None) -> None:
        self.factors = factors
        self.fallback = fallback
        self.column_scale = column_scale
        self._transposed: dict[int, sp.csr_matrix] = {}

    def raw_rows(self, queries: np.ndarray) -> sp.csr_matrix:
        total = None
        for weight, left, right in self.factors(queries):
            term = weight * (left @ right)
            total = term if total is None else total + term
        if self.column_scale is not None:
            total = total @ sp.diags(self.column_scale)
        return total.tocsr()

    def rows(self, queries: torch.Tensor) -> torch.Tensor:
        block = self.raw_rows(queries.to(torch.long).numpy()).tocoo()
        scores = self.fallback.expand(queries.numel(), -1).clone()
        positive = block.data > 0
        row = torch.from_numpy(block.row[positive].astype(np.int64))
        col = torch.from_numpy(block.col[positive].astype(np.int64))
        scores[row, col] = torch.from_numpy(block.data[positive].astype(np.float32))
        return scores

    __call__ = rows

    def pairs(self, u: torch.Tensor, v: torch.Tensor, chunk_size: int = 4096) -> torch.Tensor:
        """``[P]`` score(u_i -> v_i), equal to ``rows(u)[i, v_i]``."""
        out = torch.empty(u.numel(), dtype=torch.float32)
        for start in range(0, u.numel(), chunk_size):
            us = u[start:start + chunk_size].to(torch.long).numpy()
            vs = v[start:start + chunk_size].to(torch.long).numpy()
            raw = np.zeros(us.size, dtype=np.float64)
            for weight, left, right in self.factors(us):
                columns = self._columns(right)[vs]  # row i: column v_i of R_t
                raw += weight * np.asarray(sp.csr_matrix(left).multiply(columns).sum(axis=1)).reshape(-1)
            if self.column_scale is not None:
                raw *= self.column_scale[vs]
            fallback = self.fallback[0, torch.from_numpy(vs)].numpy()
            out[start:start + us.size] = torch.from_numpy(
                np.where(raw > 0, raw, fallback).astype(np.float32))
        return out

    def _columns(self, right: sp.csr_matrix) -> sp.csr_matrix:
        key = id(right)
        if key not in self._transposed:
            self._transposed[key] = right.T.tocsr()
        return self._transposed[key]


def _selector(queries: np.ndarray, num_nodes: int) -> sp.csr_matrix:
    """Rows of the identity: ``[B, N]`` with a 1 at (i, queries[i])."""
    return sp.csr_matrix((np.ones(queries.size, dtype=np.float32), (np.arange(queries.size), queries)),
                         shape=(queries.size, num_nodes))


def walk_scores(edge_index: torch.Tensor, num_nodes: int, weights: Sequence[float],
                symmetric: bool) -> SparseRecommender:
    r"""Truncated random walk: score(q, .) = \sum_h w_h (P^h)_{q .}, P row-normalised A or A + A^T.

    ``weights[h - 1]`` is w_h. On the symmetrised graph a training edge v -> q lets the walk go
    q -> v in one step, which is what "bought together" means in a co-purchase graph.
    """
    weights = [float(w) for w in weights]
    if not weights or min(weights) < 0 or max(weights) <= 0:
        raise ValueError(f"walk weights must be >= 0 with one > 0, got {weights}")
    transition = transition_matrix(binary_adjacency(edge_index, num_nodes, symmetric))
    last = max(h for h, weight in enumerate(weights) if weight > 0)

    def factors(queries: np.ndarray) -> list[tuple[float, sp.spmatrix, sp.csr_matrix]]:
        terms, position = [], _selector(queries, num_nodes)  # position = P^(h-1) rows
        for h, weight in enumerate(weights[:last + 1]):
            if weight:
                terms.append((weight, position, transition))
            if h < last:
                position = position @ transition
        return terms

    return SparseRecommender(factors, popularity_fallback(edge_index, num_nodes))


def rp3beta_scores(edge_index: torch.Tensor, num_nodes: int, alpha: float, beta: float,
                   symmetric: bool) -> SparseRecommender:
    r"""RP3beta (Paudel et al. 2017) on the product graph, as item-based collaborative filtering.

    In user-item data RP3beta walks user -> item -> user -> item. Here the query product q plays
    the user with its out-neighbours as its items: q -> j (an out-neighbour), j <- v (another
    product that links to j), v -> x. With P_out = D_out^{-1} A and P_in = D_in^{-1} A^T, every
    transition probability raised to alpha and the target divided by its popularity to the beta:

    .. math::
        \mathrm{score}(q, x) = (P_{out}^{\alpha}\, P_{in}^{\alpha}\, P_{out}^{\alpha})_{qx}
                               \,/\, d_{in}(x)^{\beta}

    On the symmetrised graph (A + A^T) both P are the random-walk matrix and it is a 3-step walk
    (alpha 1, beta 0: P3).
    """
    if alpha <= 0 or beta < 0:
        raise ValueError(f"RP3beta needs alpha > 0 and beta >= 0, got {alpha}, {beta}")
    adjacency = binary_adjacency(edge_index, num_nodes, symmetric)
    forward = transition_matrix(adjacency, alpha)
    backward = forward if symmetric else transition_matrix(adjacency.T.tocsr(), alpha)
    in_degree = np.asarray(adjacency.sum(axis=0), dtype=np.float64).reshape(-1)
    penalty = np.zeros_like(in_degree)
    np.power(in_degree, -beta, out=penalty, where=in_degree > 0)

    def factors(queries: np.ndarray) -> list[tuple[float, sp.spmatrix, sp.csr_matrix]]:
        return [(1.0, forward[queries] @ backward, forward)]

    return SparseRecommender(factors, popularity_fallback(edge_index, num_nodes),
                             penalty.astype(np.float32))


class ItemKnn(SparseRecommender):
    r"""Item-kNN: cosine similarity of the products' neighbour sets, with a shrink term.

    .. math::
        \mathrm{score}(q, x) = \frac{a_q \cdot a_x}{\lVert a_q\rVert \lVert a_x\rVert + h}

    with a the binary rows of A + A^T (or A: out-neighbour sets). The product itself is
    excluded by the evaluator; direct neighbours score only through shared neighbours.
    """

    def __init__(self, edge_index: torch.Tensor, num_nodes: int, shrink: float, symmetric: bool = True):
        if shrink < 0:
            raise ValueError(f"item-kNN shrink must be >= 0, got {shrink}")
        self.adjacency = binary_adjacency(edge_index, num_nodes, symmetric)
        self.norm = np.sqrt(np.asarray(self.adjacency.sum(axis=1), dtype=np.float64).reshape(-1))
        self.shrink = float(shrink)
        columns = self.adjacency.T.tocsr()
        super().__init__(lambda queries: [(1.0, self.adjacency[queries], columns)],
                         popularity_fallback(edge_index, num_nodes))

    def raw_rows(self, queries: np.ndarray) -> sp.csr_matrix:
        overlap = super().raw_rows(queries).tocoo()
        overlap.data = (overlap.data / (self.norm[queries][overlap.row] * self.norm[overlap.col]
                                        + self.shrink)).astype(np.float32)
        return overlap.tocsr()

    def pairs(self, u: torch.Tensor, v: torch.Tensor, chunk_size: int = 4096) -> torch.Tensor:
        us, vs = u.to(torch.long).numpy(), v.to(torch.long).numpy()
        overlap = np.asarray(self.adjacency[us].multiply(self.adjacency[vs]).sum(axis=1)).reshape(-1)
        raw = overlap / (self.norm[us] * self.norm[vs] + self.shrink)
        raw = np.where(overlap > 0, raw, 0.0)
        fallback = self.fallback[0, torch.from_numpy(vs)].numpy()
        return torch.from_numpy(np.where(raw > 0, raw, fallback).astype(np.float32))


def item_knn_scores(edge_index: torch.Tensor, num_nodes: int, shrink: float,
                    symmetric: bool = True) -> ItemKnn:
    """:class:`ItemKnn` (rows and pairs)."""
    return ItemKnn(edge_index, num_nodes, shrink, symmetric)


# A training-free recommender tuned on validation: a builder of its settings and its grid.
WalkFamily = tuple[Callable[..., SparseRecommender], list[dict[str, Any]]]


def walk_families(edge_index: torch.Tensor, num_nodes: int, step_weights: Sequence[Sequence[float]],
                  rp3beta_alpha: Sequence[float], rp3beta_beta: Sequence[float]) -> dict[str, WalkFamily]:
    """The four walks, each with the grid it is tuned on: ``walk`` and ``walk_directed`` (the
    truncated walk on A + A^T and on A, one grid point per step-weight vector), ``rp3beta`` and
    ``rp3beta_directed`` (RP3beta on A + A^T and on A, alpha x beta). The shipped baselines and
    BLADE's walk channel (:func:`models.walk_channel.choose_walk_channel`) both draw from these,
    so the channel's walk is the one the baseline of the same name would pick."""
    walks = [{"weights": tuple(float(w) for w in weights)} for weights in step_weights]
    rp3 = [{"alpha": float(a), "beta": float(b)} for a in rp3beta_alpha for b in rp3beta_beta]

    def walk(symmetric: bool) -> Callable[..., SparseRecommender]:
        return lambda weights: walk_scores(edge_index, num_nodes, weights, symmetric)

    def rp3beta(symmetric: bool) -> Callable[..., SparseRecommender]:
        return lambda alpha, beta: rp3beta_scores(edge_index, num_nodes, alpha, beta, symmetric)

    return {"walk": (walk(True), walks), "walk_directed": (walk(False), walks),
            "rp3beta": (rp3beta(True), rp3), "rp3beta_directed": (rp3beta(False), rp3)}


def choose_on_validation(build: Callable[..., ScoreFn], grid: Sequence[dict[str, Any]],
                         edges: torch.Tensor, exclude_indptr: torch.Tensor,
                         exclude_indices: torch.Tensor, num_nodes: int,
                         ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The settings of ``grid`` whose ``build(**settings)`` has the best filtered MRR@10 on
    ``edges`` (validation edges: never the test edges). Ties keep the earlier grid point.

    Returns:
        ``(best settings, [{**settings, "val_mrr@10": x}, ...] for every grid point)``.
    """
    if not grid:
        raise ValueError("a baseline needs at least one grid point")
    tried, best, best_mrr = [], None, -1.0
    for settings in grid:
        ranks = filtered_ranks(build(**settings), edges[0], edges[1], exclude_indptr,
                               exclude_indices, num_nodes)
        mrr = mrr_at_k(ranks, 10)
        tried.append({**settings, "val_mrr@10": round(mrr, 5)})
        if mrr > best_mrr + 1e-12:
            best, best_mrr = dict(settings), mrr
    return best, tried


__all__ = ["ItemKnn", "SparseRecommender", "WalkFamily", "binary_adjacency", "choose_on_validation",
           "cooccurrence_scores", "item_knn_scores", "popularity_fallback", "popularity_scores",
           "rp3beta_scores", "transition_matrix", "walk_families", "walk_scores"]
