"""Exact top-k recommendation from precomputed embeddings in PyTorch (the ONNX scorer's reference).

For query q, every node v != q scores ``scale * s_q . t_v`` (plus the walk channel's bonus where
the model has one); the k best are returned, best first.
Queries are processed in chunks so the ``[chunk, N]`` score block stays small.
"""

from __future__ import annotations

import torch
from torch import Tensor

# 256 queries x 262,111 products x 4 bytes = 268 MB per score block
DEFAULT_CHUNK = 256


@torch.inference_mode()
def top_k(source: Tensor, target: Tensor, scale: float, queries: Tensor, k: int,
          chunk: int = DEFAULT_CHUNK, walk_index: Tensor | None = None,
          walk_bonus: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``(ids [Q, k], scores [Q, k])`` for node indices ``queries`` (the query itself excluded).

    Args:
        source, target: ``[N, d]`` embeddings.
        scale: score multiplier.
        queries: int64 ``[Q]`` node indices.
        k: results per query, at most N - 1.
        chunk: queries per matrix product.
        walk_index, walk_bonus: ``[N, w]`` the walk channel's table and bonus
            (:meth:`models.walk_channel.WalkChannel.bonus_table`), added at those targets.
    """
    num_nodes = target.shape[0]
    if not 1 <= k < num_nodes:
        raise ValueError(f"k must be in [1, {num_nodes - 1}] (the graph has {num_nodes} nodes), got {k}")
    target_t = target.T.contiguous()
    ids, scores = [], []
    for start in range(0, queries.numel(), chunk):
        batch = queries[start:start + chunk]
        block = (source[batch] @ target_t).mul_(scale)
        if walk_index is not None:
            block.scatter_add_(1, walk_index[batch].to(torch.long), walk_bonus[batch].to(block.dtype))
        block[torch.arange(batch.numel()), batch] = -torch.inf
        best = torch.topk(block, k, dim=1)
        ids.append(best.indices)
        scores.append(best.values)
    if not ids:
        return torch.zeros((0, k), dtype=torch.long), torch.zeros((0, k))
    return torch.cat(ids), torch.cat(scores)
