"""Filtered full ranking, HitRate@k, MRR@k, direction AUC and in-degree buckets (method doc sec. 5).

Every ranking metric here is **filtered**: a held-out edge (q, v) ranks v among all N nodes by
score(q, x), after removing q itself and q's training out-neighbours from the candidates (they
are known links, not recommendations). Reports must say so.

A model or baseline enters the evaluator only through a :data:`ScoreFn`: query ids ``[B]`` ->
scores ``[B, N]`` over all nodes, higher = more likely q -> x. Typical use::

    indptr, indices = out_neighbour_csr(train_edge_index, num_nodes)
    ranks = filtered_ranks(score_fn, test[0], test[1], indptr, indices, num_nodes)
    metrics = ranking_metrics(ranks)                          # {"hit_rate@5": ..., "count": ...}
    by_degree = bucketed_metrics(ranks, degree_buckets(train_in_degree[test[0]]))
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

ScoreFn = Callable[[torch.Tensor], torch.Tensor]
"""Query ids LongTensor ``[B]`` -> scores FloatTensor ``[B, N]`` over all N nodes."""

DEFAULT_KS = (5, 10, 20)

# Default edges per chunk: below about 128 the per-chunk overhead dominates, above about 1,024
# nothing is gained (measured: docs/decisions.md, 2026-12-03); 256 keeps a chunk's scores at 256 * N * 4 bytes
# (268 MB at 262k nodes, plus one comparison buffer as large).
DEFAULT_CHUNK_SIZE = 256

# Counts are summed in float32, exact while every partial sum stays below 2**24.
_FLOAT32_EXACT_COUNT = 2**24


def out_neighbour_csr(
    edge_index: torch.Tensor, num_nodes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """CSR of every node's out-neighbours, the exclusion lists of :func:`filtered_ranks`.

    Args:
        edge_index: ``[2, E]`` training edges u -> v.
        num_nodes: N.

    Returns:
        ``(indptr [N + 1], indices [E])``: the out-neighbours of u are
        ``indices[indptr[u]:indptr[u + 1]]`` (duplicates kept; the evaluator ignores them).
    """
    source, target = edge_index[0].to(torch.long), edge_index[1].to(torch.long)
    order = torch.argsort(source, stable=True)
    counts = torch.bincount(source, minlength=num_nodes)
    indptr = torch.zeros(num_nodes + 1, dtype=torch.long)
    indptr[1:] = counts.cumsum(0)
    return indptr, target[order]


def _exclusion_pairs(
    queries: torch.Tensor, targets: torch.Tensor, indptr: torch.Tensor, indices: torch.Tensor,
    num_nodes: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions ``(row [M], col [M])`` to remove from a chunk's ``[B, N]`` score matrix.

    Row i holds q_i itself and q_i's CSR out-neighbours, without duplicates and without the
    target v_i (the ranked item is never removed from its own candidate list).
    """
    batch = queries.numel()
    start = indptr[queries]
    count = indptr[queries + 1] - start
    total = int(count.sum())
    first_slot = count.cumsum(0) - count  # where row i's entries begin in the expanded list
    # Row id of every expanded entry: +1 at each row's first slot, then a running sum. Empty
    # rows share the next row's slot, so the sum skips them. (Same result as
    # repeat_interleave, which wakes every OpenMP thread even for a few hundred entries and
    # costs milliseconds per chunk when the cores are busy.)
    step = torch.zeros(total + 1, dtype=torch.long)
    step.index_add_(0, first_slot, torch.ones(batch, dtype=torch.long))
    row = step[:total].cumsum(0) - 1
    col = indices[start[row] + torch.arange(total) - first_slot[row]]
    row = torch.cat([torch.arange(batch), row])
    col = torch.cat([queries, col])
    keep = col != targets[row]
    key = torch.unique(row[keep] * num_nodes + col[keep])
    return key // num_nodes, key % num_nodes


def _count_above(
    scores: torch.Tensor, threshold: torch.Tensor, buffer: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row i of ``scores [R, N]``: (#{j: x_ij > t_i}, #{j: x_ij >= t_i}), float64 ``[R]``.

    ``buffer``: at least ``[R, N]``, float32 (exact counts below 2**24) or float64.
    """
    work = buffer[:scores.shape[0]]
    threshold = threshold.unsqueeze(1)
    # Comparison into a float buffer and a sum in the buffer's dtype: bool reductions and
    # float32 -> float64 accumulation are several times slower on this CPU.
    greater = torch.gt(scores, threshold, out=work).sum(1).double()
    greater_equal = torch.ge(scores, threshold, out=work).sum(1).double()
    return greater, greater_equal


def filtered_ranks(
    score_fn: ScoreFn,
    queries: torch.Tensor,
    targets: torch.Tensor,
    exclude_indptr: torch.Tensor,
    exclude_indices: torch.Tensor,
    num_nodes: int,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: Callable[[int], object] | None = None,
) -> torch.Tensor:
    r"""Filtered mid-rank of each evaluation edge's target among all nodes.

    For edge i = (q, v) with scores x_j = score_fn(q)[j], the candidates are
    C_i = {0..N-1} \ ({q} ∪ N_out(q)) ∪ {v}, N_out(q) = q's training out-neighbours, and

    .. math::
        \mathrm{rank}_i = 1 + \#\{j \in C_i : x_j > x_v\}
                            + \tfrac12 \#\{j \in C_i \setminus \{v\} : x_j = x_v\}

    The mid-rank makes ties deterministic and fair: a baseline that scores many nodes equally
    (popularity, zero co-occurrence) gets the expected rank of a random tie-break rather than
    the best or worst case. v is never removed, even if it is q itself or listed in N_out(q)
    (a duplicate of a training edge): the evaluator ranks what it is asked to rank.

    Implementation: edges are sorted by query and cut into chunks of ``chunk_size`` edges;
    score_fn is called once per chunk on the chunk's distinct queries. Inside a chunk the
    counts over all N nodes are two vectorised comparisons per edge; the excluded positions
    (built from the CSR with index ops, a few per edge) are then gathered and their
    contributions subtracted. This never writes into score_fn's output, so score_fn may
    return a view of its own storage. NaN candidate scores count as lower than x_v; a NaN
    target score raises.

    Args:
        score_fn: query ids LongTensor ``[B]`` -> FloatTensor ``[B, N]``.
        queries: ``[Q]`` source q of each evaluation edge.
        targets: ``[Q]`` target v of each evaluation edge.
        exclude_indptr: ``[N + 1]`` CSR row pointer of the training out-neighbours
            (:func:`out_neighbour_csr`).
        exclude_indices: ``[nnz]`` CSR column ids.
        num_nodes: N.
        chunk_size: edges per score_fn call; memory is about 2 * chunk_size * N * 4 bytes.
        progress: called after each chunk with the number of edges ranked so far
            (for tqdm: ``lambda n: bar.update(n - bar.n)``).

    Returns:
        FloatTensor (float64) ``[Q]`` of ranks >= 1, in multiples of 1/2, in input order.
    """
    queries = queries.to(torch.long).reshape(-1)
    targets = targets.to(torch.long).reshape(-1)
    if queries.numel() != targets.numel():
        raise ValueError(f"queries [{queries.numel()}] and targets [{targets.numel()}] differ")
    if exclude_indptr.numel() != num_nodes + 1:
        raise ValueError(f"exclude_indptr must have N + 1 = {num_nodes + 1} entries, "
                         f"got {exclude_indptr.numel()}: build it with out_neighbour_csr")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    num_edges = queries.numel()
    ranks = torch.empty(num_edges, dtype=torch.float64)
    if num_edges == 0:
        return ranks
    ids = torch.cat([queries, targets])
    if int(ids.min()) < 0 or int(ids.max()) >= num_nodes:
        raise ValueError(f"queries / targets hold node ids outside 0..{num_nodes - 1}")
    indptr = exclude_indptr.to(torch.long)
    indices = exclude_indices.to(torch.long)
    count_dtype = torch.float32 if num_nodes < _FLOAT32_EXACT_COUNT else torch.float64

    # Sorting by query puts repeated queries in one chunk, so score_fn runs once per query.
    order = torch.argsort(queries, stable=True)
    buffer = torch.empty(0)  # reused 0/1 comparison matrix: a fresh [B, N] per chunk page-faults
    for start in range(0, num_edges, chunk_size):
        edge = order[start:start + chunk_size]
        query, target = queries[edge], targets[edge]
        batch = edge.numel()
        unique_query, inverse, repeats = torch.unique_consecutive(
            query, return_inverse=True, return_counts=True)
        scores = score_fn(unique_query)
        if scores.shape != (unique_query.numel(), num_nodes):
            raise ValueError(f"score_fn returned shape {list(scores.shape)} for "
                             f"{unique_query.numel()} queries; expected "
                             f"[{unique_query.numel()}, {num_nodes}]")
        target_score = scores[inverse, target]
        if bool(torch.isnan(target_score).any()):
            raise ValueError("score_fn returned NaN for a target node")
        if buffer.shape[0] < scores.shape[0] or buffer.shape[1] != num_nodes:
            buffer = torch.empty(scores.shape[0], num_nodes, dtype=count_dtype)

        greater = torch.empty(batch, dtype=torch.float64)
        greater_equal = torch.empty(batch, dtype=torch.float64)
        # A query repeated in the chunk needs one comparison pass per edge. Pass r takes the
        # r-th edge of every query, so pass 0 compares score_fn's rows in place and only the
        # (few) repeats gather a copy of their rows: copying all [B, N] costs as much as
        # the comparisons themselves.
        occurrence = torch.arange(batch) - (repeats.cumsum(0) - repeats)[inverse]
        for r in range(int(repeats.max())):  # max repeats of one query, not a loop over edges
            in_pass = (occurrence == r).nonzero().squeeze(1)
            rows = scores if r == 0 else scores[inverse[in_pass]]
            greater[in_pass], greater_equal[in_pass] = _count_above(
                rows, target_score[in_pass], buffer)

        # Remove the excluded positions from both counts (v itself was never among them).
        ex_edge, ex_col = _exclusion_pairs(query, target, indptr, indices, num_nodes)
        ex_score, ex_threshold = scores[inverse[ex_edge], ex_col], target_score[ex_edge]
        greater -= torch.bincount(ex_edge, weights=(ex_score > ex_threshold).double(),
                                  minlength=batch)
        greater_equal -= torch.bincount(ex_edge, weights=(ex_score >= ex_threshold).double(),
                                        minlength=batch)
        # greater_equal counts v itself: ties other than v = greater_equal - greater - 1, and
        # rank = 1 + greater + (greater_equal - greater - 1) / 2.
        ranks[edge] = 0.5 * (1.0 + greater + greater_equal)
        if progress is not None:
            progress(min(start + chunk_size, num_edges))
    return ranks


def hit_rate_at_k(ranks: torch.Tensor, k: int) -> float:
    """HitRate@k = share of ranks <= k (nan for no ranks). ``ranks``: ``[Q]``."""
    if ranks.numel() == 0:
        return float("nan")
    return float((ranks <= k).double().mean())


def mrr_at_k(ranks: torch.Tensor, k: int) -> float:
    """MRR@k = mean over edges of 1/rank if rank <= k else 0 (nan for no ranks)."""
    if ranks.numel() == 0:
        return float("nan")
    ranks = ranks.double()
    return float(torch.where(ranks <= k, 1.0 / ranks, torch.zeros_like(ranks)).mean())


def ranking_metrics(ranks: torch.Tensor, ks: Iterable[int] = DEFAULT_KS) -> dict[str, float]:
    """``{"hit_rate@k": ..., "mrr@k": ... for k in ks, "count": Q}`` of filtered ranks ``[Q]``."""
    metrics: dict[str, float] = {}
    for k in ks:
        metrics[f"hit_rate@{k}"] = hit_rate_at_k(ranks, k)
        metrics[f"mrr@{k}"] = mrr_at_k(ranks, k)
    metrics["count"] = int(ranks.numel())
    return metrics


def degree_buckets(
    query_in_degree: torch.Tensor, low_degree_max: int = 2
) -> dict[str, torch.Tensor]:
    """Quartile buckets of the queries' (training) in-degree, plus an overlapping low bucket.

    Let d_(1) <= ... <= d_(Q) be the sorted degrees and u_j = d_(1 + floor(j (Q - 1) / 4)) for
    j = 1, 2, 3 (the "lower" quantile, always an observed degree) and u_4 = d_(Q). Quartile j
    is the degree range (u_{j-1}, u_j], u_0 = -inf. With heavy ties u_j can equal u_{j-1}, which
    would leave quartile j empty; such quartiles are merged with the one that shares their upper
    bound, and the bucket is named after all of them ("q1-q3: d_in 0-1"). The quartile buckets
    are therefore disjoint, non-empty (each holds at least the node at its upper bound) and
    cover every query. Each is named by the degree range it actually contains. The
    ``"low: d_in <= low_degree_max"`` bucket overlaps them and may be empty.

    Args:
        query_in_degree: ``[Q]`` training in-degree of each evaluation edge's query.
        low_degree_max: inclusive upper degree of the low bucket.

    Returns:
        Ordered ``{name: BoolTensor [Q]}``: the quartile buckets by increasing degree, then the
        low bucket. For Q = 0 only the (empty) low bucket.
    """
    degree = query_in_degree.to(torch.long).reshape(-1)
    buckets: dict[str, torch.Tensor] = {}
    count = degree.numel()
    if count:
        ordered = torch.sort(degree).values
        positions = [(j * (count - 1)) // 4 for j in (1, 2, 3)] + [count - 1]
        uppers = ordered[positions].tolist()
        lower = int(ordered[0]) - 1  # below every degree: quartile 1 is (lower, u_1]
        first = 0
        for j in range(4):  # four quartiles, not a loop over nodes
            if j + 1 < 4 and uppers[j + 1] == uppers[j]:
                continue  # quartile j + 2 has the same upper bound: one merged bucket
            mask = (degree > lower) & (degree <= uppers[j])
            low, high = int(degree[mask].min()), uppers[j]
            quartiles = f"q{first + 1}" if first == j else f"q{first + 1}-q{j + 1}"
            span = f"{low}" if low == high else f"{low}-{high}"
            buckets[f"{quartiles}: d_in {span}"] = mask
            lower, first = uppers[j], j + 1
    buckets[f"low: d_in <= {low_degree_max}"] = degree <= low_degree_max
    return buckets


def bucketed_metrics(
    ranks: torch.Tensor, buckets: dict[str, torch.Tensor], ks: Iterable[int] = DEFAULT_KS
) -> dict[str, dict[str, float]]:
    """:func:`ranking_metrics` (with ``count``) of ``ranks [Q]`` inside each bucket mask ``[Q]``."""
    ks = tuple(ks)
    return {name: ranking_metrics(ranks[mask], ks) for name, mask in buckets.items()}


__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_KS",
    "ScoreFn",
    "bucketed_metrics",
    "degree_buckets",
    "filtered_ranks",
    "hit_rate_at_k",
    "mrr_at_k",
    "out_neighbour_csr",
    "ranking_metrics",
]
