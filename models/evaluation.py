"""Evaluating one recommender (embeddings or a baseline) under the filtered protocol.

For each evaluation edge (q, v): rank v among all nodes by the method's score, excluding q and
q's training out-neighbours (filtered ranking); HitRate@k and MRR@k overall and per in-degree
bucket of the query and per subset (edges whose reverse is a training edge, and the others);
direction AUC over the one-way evaluation edges (score(u -> v) against score(v -> u)); and the
global link metric (:func:`models.metrics.global_link_metrics`: every evaluation edge against
one seeded pool of uniform non-edges). See docs/blade-method.md sec. 5.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from models.encoder import score
from models.metrics import (
    DEFAULT_KS,
    ScoreFn,
    bucketed_metrics,
    degree_buckets,
    filtered_ranks,
    ranking_metrics,
)
from models.pair_metrics import direction_auc, global_link_metrics
from models.walk_channel import WalkChannel, pair_bonus, with_walk_channel

PairScoreFn = Callable[[Tensor, Tensor], Tensor]  # (u [P], v [P]) -> score(u -> v) [P]


@dataclass
class EvaluationSet:
    """The evaluation edges and everything the filtered protocol needs about them."""

    edges: Tensor  # [2, Q] (query, target)
    exclude_indptr: Tensor  # [N + 1] CSR of training out-neighbours (filtered out)
    exclude_indices: Tensor
    query_in_degree: Tensor  # [Q] training in-degree of each query (degree buckets)
    one_way: Tensor  # [Q] bool: reverse edge absent from the whole graph (direction AUC)
    num_nodes: int
    ks: tuple[int, ...] = DEFAULT_KS
    low_degree_max: int = 2
    reverse_in_train: Tensor | None = None  # [Q] bool: v -> q is a training edge (subsets)
    non_edges: Tensor | None = None  # [2, M] the shared pool of uniform non-edges (global metric)


SUBSETS = ("reverse in training", "reverse not in training")


def embedding_scorers(source: Tensor, target: Tensor, scale: float,
                      walk: WalkChannel | None = None) -> tuple[ScoreFn, PairScoreFn]:
    """Row and pair scorers for dual embeddings: ``scale * s_q . t_x``, plus the walk channel's
    bonus where the model has one (:mod:`models.walk_channel`)."""
    def rows(queries: Tensor) -> Tensor:
        return score(source[queries], target, scale)

    def pairs(u: Tensor, v: Tensor) -> Tensor:
        return scale * (source[u] * target[v]).sum(dim=-1)

    if walk is None or walk.weight == 0.0:
        return rows, pairs
    return with_walk_channel(rows, walk), lambda u, v: pairs(u, v) + pair_bonus(walk, u, v)


def saved_scorers(saved: dict[str, Any]) -> tuple[ScoreFn, PairScoreFn]:
    """:func:`embedding_scorers` of a saved ``embeddings.pt`` (``pipeline.train.save_embeddings``)."""
    return embedding_scorers(saved["source"], saved["target"], saved["scale"],
                             WalkChannel.from_dict(saved.get("walk_channel")))


def pairs_from_rows(rows: ScoreFn, chunk_size: int = 256) -> PairScoreFn:
    """Pair scores read off full score rows (for baselines that only define rows)."""
    def pairs(u: Tensor, v: Tensor) -> Tensor:
        out = torch.empty(u.numel(), dtype=torch.float32)
        for start in range(0, u.numel(), chunk_size):
            block = slice(start, start + chunk_size)
            chunk_rows = rows(u[block])
            out[block] = chunk_rows[torch.arange(chunk_rows.shape[0]), v[block]]
        return out

    return pairs


def evaluate_scorer(
    rows: ScoreFn,
    pairs: PairScoreFn,
    evaluation: EvaluationSet,
    progress: Callable[[int], object] | None = None,
) -> dict[str, Any]:
    """Metrics of one method: ``{"overall": {...}, "direction_auc": x, "buckets": {...}}``."""
    queries, targets = evaluation.edges
    ranks = filtered_ranks(rows, queries, targets, evaluation.exclude_indptr,
                           evaluation.exclude_indices, evaluation.num_nodes, progress=progress)
    one_way = evaluation.edges[:, evaluation.one_way]
    auc = direction_auc(pairs(one_way[0], one_way[1]), pairs(one_way[1], one_way[0]))
    buckets = degree_buckets(evaluation.query_in_degree, evaluation.low_degree_max)
    result = {
        "overall": ranking_metrics(ranks, evaluation.ks),
        "direction_auc": auc,
        "one_way_edges": int(evaluation.one_way.sum()),
        "buckets": bucketed_metrics(ranks, buckets, evaluation.ks),
    }
    if evaluation.reverse_in_train is not None:
        reverse = evaluation.reverse_in_train
        result["subsets"] = bucketed_metrics(ranks, dict(zip(SUBSETS, (reverse, ~reverse))), evaluation.ks)
    if evaluation.non_edges is not None:
        result["global"] = global_link_metrics(pairs(queries, targets),
                                               pairs(evaluation.non_edges[0], evaluation.non_edges[1]))
        result["non_edges"] = int(evaluation.non_edges.shape[1])
    return result


def low_degree_metrics(result: dict[str, Any]) -> dict[str, float]:
    """The low-degree bucket's metrics from :func:`evaluate_scorer`'s result ({} if absent)."""
    return next((values for name, values in result["buckets"].items() if name.startswith("low")), {})
