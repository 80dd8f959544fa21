"""One epoch's sampled neighbourhoods as aggregation matrices, and the step order under DDP.

An epoch's supervision edges must not be message-passing neighbours of their own endpoints (no
leakage), not even as a later hop of a multi-hop top-up path. The epoch's pairs are sorted once
into CSR with the training edges of each entry's path; :meth:`EpochAggregation.matrix` then
gives the pairs whose path uses an excluded edge weight 0, and the mean is over the entries that
remain. (Mini-batch computation graphs, which cut out only the rows a batch needs, were removed
with the mini-batch training on 2026-12-06: ``docs/decisions.md``.)
"""

from __future__ import annotations

import torch
from torch import Tensor

from models.sparse import (
    AggregationMatrix,
    csr_pointer,
    csr_tensor,
)


class EpochAggregation:
    r"""Sparse ``[N, N]`` mean aggregation over sampled pairs, re-weightable per supervision split.

    For the pairs (u, v) kept by a batch (``via_edge`` not excluded), with k_u kept pairs in
    row u, :math:`A_{uv} = 1 / k_u`, and 0 for excluded pairs. (Sum and degree-weighted
    aggregations were flags once; no default, tuning or ablation used them: ``docs/decisions.md``,
    2026-12-06.) Rows with no kept pair are zero (the encoder's self term carries
    the node).

    Args:
        index: ``[2, M]`` pairs (u, v), v in S(u), e.g. the sampler's ``out_index``.
        via_edge: ``[M]`` or ``[M, H]`` training edge ids of each pair's path (leakage
            masking: the sampler's ``path_edges``; ``-1`` pads short paths); a pair is dropped
            when any of them is excluded. May be taken modulo ``num_edges`` by the caller for
            graphs listed in both directions (keep the ``-1`` padding).
        num_nodes: N.
    """

    def __init__(
        self,
        index: Tensor,
        via_edge: Tensor,
        num_nodes: int,
    ) -> None:
        if index.dim() != 2 or index.shape[0] != 2:
            raise ValueError(f"index must have shape [2, M] (rows u, v), got {list(index.shape)}")
        if index.numel() > 0 and (int(index.min()) < 0 or int(index.max()) >= num_nodes):
            raise ValueError(
                f"index holds node ids in [{int(index.min())}, {int(index.max())}], "
                f"outside [0, {num_nodes}); was num_nodes taken from the same graph?"
            )
        self.num_nodes = num_nodes
        index = index.long()
        order = torch.argsort(index[0] * num_nodes + index[1])
        self.row = index[0, order]
        self.col = index[1, order]
        via_edge = via_edge.long()
        self.via_edge = (via_edge[:, None] if via_edge.dim() == 1 else via_edge)[order]
        self.crow = csr_pointer(self.row, num_nodes)
        # Transpose in CSR: entries sorted by (col, row); t_order maps its slots to ours.
        self.t_order = torch.argsort(self.col * num_nodes + self.row)
        self.t_crow = csr_pointer(self.col[self.t_order], num_nodes)
        self.t_col = self.row[self.t_order]

    def matrix(self, excluded_edges: Tensor | None = None) -> AggregationMatrix:
        """The ``[N, N]`` aggregation matrix with pairs whose path uses an excluded edge dropped.

        Args:
            excluded_edges: BoolTensor ``[E]`` over training edge ids (True = drop), or None.
        """
        if excluded_edges is None:
            keep = torch.ones(self.row.numel(), dtype=torch.float32)
        else:
            keep = (~_reached_through(excluded_edges, self.via_edge)).to(torch.float32)
        kept_per_row = torch.zeros(self.num_nodes, dtype=torch.float32).index_add_(0, self.row, keep)
        value = keep / kept_per_row[self.row].clamp(min=1.0)
        shape = (self.num_nodes, self.num_nodes)
        return AggregationMatrix(
            matrix=csr_tensor(self.crow, self.col, value, shape),
            transpose=csr_tensor(self.t_crow, self.t_col, value[self.t_order], shape),
        )

def _reached_through(excluded_edges: Tensor, path_edges: Tensor) -> Tensor:
    """``[K]`` True where a path ``[K, H]`` (``-1`` padded) uses an excluded edge."""
    if path_edges.shape[1] == 1:
        return excluded_edges[path_edges[:, 0]]  # one hop, no padding: the common case
    padded = torch.cat([excluded_edges, excluded_edges.new_zeros(1)])
    return padded[torch.where(path_edges < 0, excluded_edges.numel(), path_edges)].any(dim=1)


def aggregation_matrix(
    index: Tensor,
    num_nodes: int,
) -> AggregationMatrix:
    """The aggregation matrix of sampled pairs with nothing excluded (inference, tests).

    Same weights as :class:`EpochAggregation`; a pair listed twice counts twice in the mean.

    Args:
        index: ``[2, M]`` pairs (u, v), v in S(u).
        num_nodes: N.
    """
    no_edge = torch.zeros(index.shape[-1], dtype=torch.long)
    return EpochAggregation(index, no_edge, num_nodes).matrix(None)


def _world() -> tuple[int, int]:
    """``(rank, world size)`` of this process under DDP, ``(0, 1)`` otherwise."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def rank_share(indices: list[int]) -> list[int]:
    """This process's share of ``indices`` under DDP: every world-size-th one from its rank, after
    padding with the first ones to a multiple of the world size (every rank must take the same
    number of steps); all of them in one process. Read at iteration time, when Lightning has
    started the process group."""
    rank, world = _world()
    if world == 1:
        return indices
    padded = indices + indices[: (-len(indices)) % world]
    return padded[rank::world]


class StepSampler(torch.utils.data.Sampler[int]):
    """Step numbers ``0..steps-1`` in order, this process's share under DDP (:func:`rank_share`).
    With N processes, rank r takes steps r, r + N, ...: an optimiser step averages the gradients
    of N consecutive steps' batches, like one process with an N times larger batch."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def __len__(self) -> int:
        return len(rank_share(list(range(self.steps))))

    def __iter__(self):
        return iter(rank_share(list(range(self.steps))))
