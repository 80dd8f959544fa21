"""BLADE's walk channel: the truncated random walk's evidence added to the embedding score.

The dual embeddings see a training edge v -> q only through what message passing makes of it,
and at dimension 64 they cannot hold every product's exact neighbourhood. A short walk on the
symmetrised training graph holds both: one step of it is the reverse edge. The channel adds to
BLADE's score (a logit of the sampled softmax) the log of the walk's probability, as a product
of experts:

.. math::
    \\mathrm{score}(q, x) = \\underbrace{\\mathrm{scale}\\; s_q \\cdot t_x + \\dots}_{\\text{BLADE}}
        + \\lambda \\log\\Bigl(1 + \\frac{W_{qx}}{\\varepsilon}\\Bigr),
    \\qquad W = w_1 P + w_2 P^2 + w_3 P^3

with P the row-normalised A + A^T of the training graph (:func:`models.baselines.walk_scores`),
or another of the shipped walks: :func:`choose_walk_channel` tries each walk the baselines
offer (the walk and RP3beta, on A + A^T and on A), at the grid point its baseline would pick,
and keeps the one that adds most to the embeddings on validation edges. Only the ``width``
largest entries of each row of W are kept (``[N, width]`` index and value
tables, what the ONNX scorer carries); the rest add 0, so where the walk knows nothing the
embeddings alone rank. lambda and epsilon are chosen after training on validation edges
(:func:`fit_walk_channel`), lambda = 0 among the candidates, so the channel never lowers the
validation score of the embeddings it is added to.

Typical use::

    table = top_walk_table(train_edge_index, num_nodes, weights=(1, 3, 3), width=32)
    fit = fit_walk_channel(embedding_rows, table, val_edges, exclude_indptr, exclude_indices)
    channel = WalkChannel(table.index, table.value, fit["weight"], fit["floor"])
    rows = with_walk_channel(embedding_rows, channel)      # a ScoreFn like any other
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from models.baselines import SparseRecommender, WalkFamily, choose_on_validation, walk_scores
from models.metrics import ScoreFn

# lambda and epsilon tried by fit_walk_channel. epsilon is relative to the walk's scale: W's
# rows sum to sum(weights); 1e-4 of that is "any walk evidence counts", 1e-1 "only strong".
# lambda is in the embedding score's units, whose spread within a row the learned scale and
# target prior set and which differs several-fold between initialisations of one graph; the
# top of the grid lets the walk order its own table whatever that spread (the embeddings then
# break its ties and rank the rest), so the channel comes to about its walk's validation score.
WEIGHT_GRID = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 128.0, 512.0, 2048.0, 8192.0)
FLOOR_GRID = (1e-3, 1e-2, 1e-1, 1.0)
# The walks a channel may use come from the caller (:func:`models.baselines.walk_families`: the
# walk and RP3beta, on A + A^T, where a training edge v -> q is one step from q, and on A, for
# graphs where the reverse edge is rare), each with the grid the baseline of the same name is
# tuned on; each walk takes the grid point that ranks the validation edges best on its own.
TABLE_WIDTH = 32  # entries per node: about the number a sparse product graph's 3-step rows hold
# Walk entries one chunk of table rows may hold (about 0.3 GB with their ids and row numbers).
# A 3-step walk on a graph with hubs reaches most nodes from every node, so a chunk takes as
# many rows as fit at the previous chunk's density, at most ``chunk_size``.
CHUNK_ENTRIES = 1 << 24


@dataclass
class WalkTable:
    """The ``width`` largest walk scores of each node: ``index [N, width]`` (long; padding
    points at the node itself with value 0) and ``value [N, width]`` (float32, >= 0)."""

    index: Tensor
    value: Tensor


@dataclass
class WalkChannel:
    """A fitted channel: the table plus lambda (``weight``) and epsilon (``floor``)."""

    index: Tensor
    value: Tensor
    weight: float
    floor: float

    def bonus(self, queries: Tensor) -> Tensor:
        """``[B, width]``: lambda * log(1 + W / epsilon) of each query's table entries."""
        return self.weight * torch.log1p(self.value[queries] / self.floor)

    def bonus_table(self) -> Tensor:
        """``[N, width]`` float32: every node's bonus (what the ONNX scorer carries)."""
        return self.bonus(torch.arange(self.index.shape[0])).to(torch.float32)

    def to_dict(self) -> dict[str, object]:
        """Tensors and numbers only, for ``torch.save`` / ``torch.load(weights_only=True)``."""
        return {"index": self.index.to(torch.int32), "value": self.value, "weight": float(self.weight),
                "floor": float(self.floor)}

    @classmethod
    def from_dict(cls, saved: dict[str, object] | None) -> WalkChannel | None:
        if not saved:
            return None
        return cls(saved["index"].to(torch.long), saved["value"].to(torch.float32),
                   float(saved["weight"]), float(saved["floor"]))


def top_table(recommender: SparseRecommender, num_nodes: int, width: int, chunk_size: int = 4096,
              progress: Callable[[int], object] | None = None,
              chunk_entries: int = CHUNK_ENTRIES) -> WalkTable:
    """The largest ``width`` entries of every row of a training-free recommender's raw scores
    (:class:`models.baselines.SparseRecommender`), computed in chunks of sparse products, so the
    full matrix is never materialised. A node's own entry (the walk's return) is left out: it is
    never a recommendation. Ties keep the smaller node id. Values are divided by the mean over
    nodes of their largest entry, so epsilon means the same on every graph and for every walk."""
    if width < 1:
        raise ValueError(f"walk channel width must be >= 1, got {width}")
    index = torch.arange(num_nodes).reshape(-1, 1).repeat(1, width)
    value = torch.zeros(num_nodes, width, dtype=torch.float32)
    start, rows = 0, min(chunk_size, 64)
    while start < num_nodes:
        nodes = np.arange(start, min(start + rows, num_nodes))
        block = recommender.raw_rows(nodes)
        row, col, data = _row_top(block, nodes, width)
        order = np.lexsort((col, -data, row))  # by row, largest value first, ties by id
        row, col, data = row[order], col[order], data[order]
        first = np.searchsorted(row, np.arange(nodes.size))
        slot = np.arange(row.size) - first[row]
        top = slot < width
        target_rows = torch.from_numpy(nodes[row[top]].astype(np.int64))
        target_slots = torch.from_numpy(slot[top].astype(np.int64))
        index[target_rows, target_slots] = torch.from_numpy(col[top].astype(np.int64))
        value[target_rows, target_slots] = torch.from_numpy(data[top].astype(np.float32))
        if progress is not None:
            progress(int(nodes[-1]) + 1)
        start += nodes.size
        rows = int(np.clip(chunk_entries * nodes.size // max(block.nnz, 1), 1, chunk_size))
    reached = value[:, 0] > 0
    if reached.any():
        value /= value[reached, 0].mean()
    return WalkTable(index=index, value=value)


def _row_top(block: sp.csr_matrix, nodes: np.ndarray,
             width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(row, col, value)`` of the CSR ``block``'s positive entries off the query's own column
    whose value is at least the row's ``width``-th largest: every entry of the row's top
    ``width``, ties at the boundary included, in row order; the sort then needs only these."""
    counts = np.diff(block.indptr)
    row = np.repeat(np.arange(nodes.size), counts)
    col, data = block.indices, block.data
    keep = (col != nodes[row]) & (data > 0)  # not the walk back to the query
    row, col, data = row[keep], col[keep], data[keep]
    counts = np.bincount(row, minlength=nodes.size)
    long_rows = np.flatnonzero(counts > width)
    if long_rows.size:
        ends = np.cumsum(counts)
        threshold = np.zeros(nodes.size, dtype=data.dtype)
        for r in long_rows:
            segment = data[ends[r] - counts[r]:ends[r]]
            threshold[r] = np.partition(segment, segment.size - width)[segment.size - width]
        keep = data >= threshold[row]
        row, col, data = row[keep], col[keep], data[keep]
    return row, col, data


def top_walk_table(edge_index: Tensor, num_nodes: int, weights: Sequence[float], width: int,
                   symmetric: bool = True, chunk_size: int = 4096) -> WalkTable:
    """:func:`top_table` of the walk W = sum_h w_h P^h (P of A + A^T, or of A)."""
    return top_table(walk_scores(edge_index, num_nodes, weights, symmetric), num_nodes, width, chunk_size)


def with_walk_channel(rows: ScoreFn, channel: WalkChannel | None) -> ScoreFn:
    """``rows`` plus the channel's bonus at each query's table entries (``rows`` unchanged)."""
    if channel is None or channel.weight == 0.0:
        return rows

    def score(queries: Tensor) -> Tensor:
        queries = queries.to(torch.long)
        scores = rows(queries).clone()
        scores.scatter_add_(1, channel.index[queries], channel.bonus(queries).to(scores.dtype))
        return scores

    return score


def pair_bonus(channel: WalkChannel | None, u: Tensor, v: Tensor) -> Tensor:
    """``[P]``: the channel's bonus for the pairs u -> v (0 where v is not in u's table)."""
    if channel is None or channel.weight == 0.0:
        return torch.zeros(u.numel())
    match = channel.index[u] == v.reshape(-1, 1)
    return (channel.bonus(u) * match).sum(dim=1)


def fit_walk_channel(rows: ScoreFn, table: WalkTable, edges: Tensor, exclude_indptr: Tensor,
                     exclude_indices: Tensor, depth: int = 64, chunk_size: int = 256,
                     weights: Sequence[float] = WEIGHT_GRID,
                     floors: Sequence[float] = FLOOR_GRID) -> dict[str, object]:
    """lambda and epsilon with the best filtered MRR@10 of ``rows`` + channel on ``edges``.

    One pass over the edges keeps, per edge, the ``depth`` best embedding scores among its
    candidates (filtered: not the query, not its training out-neighbours) and the table
    entries; every grid point is then ranked inside that small set. The rank is exact up to
    ``depth``: a candidate outside the set has no bonus and an embedding score below ``depth``
    others in the set, each of whose fused scores is at least its embedding score. A tie with
    the target counts in the target's favour (real-valued embedding scores have none; the
    evaluator would give a mid-rank).

    Returns:
        ``{"weight", "floor", "mrr@10", "mrr@10_without", "grid": [[weight, floor, mrr], ...]}``.
    """
    queries, targets = edges[0].to(torch.long), edges[1].to(torch.long)
    num_edges = queries.numel()
    kept_scores, kept_ids, target_scores = [], [], []
    for start in range(0, num_edges, chunk_size):
        q, v = queries[start:start + chunk_size], targets[start:start + chunk_size]
        scores = rows(q).clone()
        target_scores.append(scores[torch.arange(q.numel()), v].clone())
        _exclude(scores, q, v, exclude_indptr, exclude_indices)
        scores[torch.arange(q.numel()), v] = float("-inf")  # the target is ranked apart
        top_score, top_id = torch.topk(scores, min(depth, scores.shape[1]), dim=1)
        table_id = table.index[q]
        table_score = scores.gather(1, table_id)  # -inf where excluded or the target
        kept_scores.append(torch.cat([top_score, table_score], dim=1))
        kept_ids.append(torch.cat([top_id, table_id], dim=1))
    base = torch.cat(kept_scores)
    ids = torch.cat(kept_ids)
    target_base = torch.cat(target_scores)
    # a candidate listed twice (in the top set and the table) must count once
    duplicate = _later_duplicates(ids)
    base = base.masked_fill(duplicate, float("-inf"))
    table_value = table.value[queries]  # [Q, width]
    table_index = table.index[queries]
    width = table_index.shape[1]
    target_match = table_index == targets.reshape(-1, 1)
    grid, best = [], None
    for floor in floors:
        log_evidence = torch.log1p(table_value / floor)
        # each kept candidate's evidence: look it up in the query's table
        candidate_evidence = torch.zeros_like(base)
        for slot in range(width):
            candidate_evidence += (ids == table_index[:, slot:slot + 1]) * log_evidence[:, slot:slot + 1]
        target_evidence = (log_evidence * target_match).sum(dim=1)
        for weight in weights:
            fused = base + weight * candidate_evidence
            threshold = target_base + weight * target_evidence
            rank = 1 + (fused > threshold.reshape(-1, 1)).sum(dim=1)
            mrr = float(torch.where(rank <= 10, 1.0 / rank, torch.zeros(())).mean())
            grid.append([weight, floor, round(mrr, 6)])
            if best is None or mrr > best[2] + 1e-9:
                best = [weight, floor, mrr]
    without = next(mrr for weight, _, mrr in grid if weight == 0.0)
    return {"weight": best[0], "floor": best[1], "mrr@10": round(best[2], 6),
            "mrr@10_without": without, "grid": grid}


@dataclass
class WalkSearch:
    """What :func:`choose_walk_channel` may use: named walks, each with its grid
    (:data:`models.baselines.WalkFamily`), and how many of the validation edges choose a walk's
    grid point (the first ``choice_edges``; None: all). With the baselines' grids and their count
    of validation edges, each walk is the one its baseline picks.

    A walk's grid point and table depend on the training graph and the validation edges, not on
    the embeddings, so one search keeps them (``tables``) for every model trained on the same
    split: the variants of one seed compute each table once."""

    walks: dict[str, WalkFamily]
    choice_edges: int | None = None
    tables: dict[tuple[str, str, int], tuple[dict[str, Any], WalkTable]] = field(default_factory=dict,
                                                                                repr=False)


def choose_walk_channel(rows: ScoreFn, num_nodes: int, edges: Tensor, exclude_indptr: Tensor,
                        exclude_indices: Tensor, search: WalkSearch,
                        width: int = TABLE_WIDTH) -> tuple[WalkChannel | None, dict[str, object]]:
    """The best walk of ``search`` (each at its grid point with the best validation MRR@10 on its
    own, then with its fitted lambda, epsilon) on validation ``edges``.

    Returns ``(channel or None, report)``: None when no walk beats the embeddings alone
    (lambda 0 chosen everywhere). ``report``: ``{"walk", "settings", "weight", "floor",
    "val_mrr@10", "val_mrr@10_without", "tried": {walk: mrr}}``.
    """
    best_channel, report, tried = None, None, {}
    choice = edges[:, :search.choice_edges]
    split = hashlib.sha256(b"".join(tensor.contiguous().numpy().tobytes() for tensor in
                                    (choice, exclude_indptr, exclude_indices))).hexdigest()
    for name, (build, grid) in search.walks.items():
        if (name, split, width) not in search.tables:
            chosen = dict(grid[0])
            if len(grid) > 1:
                chosen, _ = choose_on_validation(build, grid, choice, exclude_indptr, exclude_indices,
                                                 num_nodes)
            search.tables[name, split, width] = chosen, top_table(build(**chosen), num_nodes, width)
        chosen, table = search.tables[name, split, width]
        fit = fit_walk_channel(rows, table, edges, exclude_indptr, exclude_indices)
        tried[name] = fit["mrr@10"]
        if report is None or fit["mrr@10"] > report["val_mrr@10"] + 1e-9:
            report = {"walk": name, "settings": chosen, "weight": fit["weight"], "floor": fit["floor"],
                      "val_mrr@10": fit["mrr@10"], "val_mrr@10_without": fit["mrr@10_without"]}
            best_channel = WalkChannel(table.index, table.value, fit["weight"], fit["floor"])
    report["tried"] = tried
    if report["weight"] == 0.0:
        return None, report | {"walk": "none"}
    return best_channel, report


def _exclude(scores: Tensor, queries: Tensor, targets: Tensor, indptr: Tensor, indices: Tensor) -> None:
    """Set the query itself and its training out-neighbours to -inf, in place."""
    batch = queries.numel()
    start, stop = indptr[queries], indptr[queries + 1]
    count = stop - start
    row = torch.repeat_interleave(torch.arange(batch), count)
    offset = torch.arange(int(count.sum())) - torch.repeat_interleave(count.cumsum(0) - count, count)
    col = indices[torch.repeat_interleave(start, count) + offset]
    scores[row, col] = float("-inf")
    scores[torch.arange(batch), queries] = float("-inf")


def _later_duplicates(ids: Tensor) -> Tensor:
    """``[Q, M]`` bool: True where the id already appeared earlier in its row."""
    order = torch.argsort(ids, dim=1, stable=True)
    sorted_ids = ids.gather(1, order)
    repeat = torch.zeros_like(sorted_ids, dtype=torch.bool)
    repeat[:, 1:] = sorted_ids[:, 1:] == sorted_ids[:, :-1]
    out = torch.zeros_like(repeat)
    out.scatter_(1, order, repeat)
    return out


__all__ = ["FLOOR_GRID", "TABLE_WIDTH", "WEIGHT_GRID", "WalkChannel", "WalkSearch", "WalkTable",
           "choose_walk_channel", "fit_walk_channel", "top_table",
           "pair_bonus", "top_walk_table", "with_walk_channel"]
