"""One epoch's sampled neighbourhoods as aggregation matrices, and a mini-batch's computation graph.

A mini-batch's positive edges must not be message-passing neighbours of their own endpoints
(no leakage), not even as a later hop of a multi-hop top-up path. The epoch's pairs are sorted
once into CSR (with the training edges of each entry's path); a batch then

- either re-weights the whole ``[N, N]`` matrix (:meth:`EpochAggregation.matrix`: entries whose
  path uses a batch edge get weight 0, the mean is over the entries that remain), or
- cuts out only the rows its L layers need (:func:`computation_graph`): the embeddings of the
  batch's nodes, the neighbours they aggregate, those neighbours' neighbours, and so on down to
  layer 0. On a large sparse graph a batch needs a few percent of it, so many cheap optimiser
  steps replace a few full-graph ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from models.sparse import (
    AggregationMatrix,
    ComputationGraph,
    csr_pointer,
    csr_row_slots,
    csr_tensor,
)


class EpochAggregation:
    r"""Sparse ``[N, N]`` mean aggregation over sampled pairs, re-weightable per mini-batch.

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

    def rows(self, nodes: Tensor, excluded_edges: Tensor | None = None) -> RowSelection:
        """The kept entries of rows ``nodes`` (in that order), with their aggregation weights.

        Args:
            nodes: ``[R]`` distinct node ids.
            excluded_edges: BoolTensor ``[E]`` (True = drop pairs reached through that edge).
        """
        local_row, slot = csr_row_slots(self.crow, nodes)
        if excluded_edges is not None:
            kept = ~_reached_through(excluded_edges, self.via_edge[slot])
            slot, local_row = slot[kept], local_row[kept]
        kept_per_row = torch.bincount(local_row, minlength=nodes.numel())
        value = 1.0 / kept_per_row[local_row].to(torch.float32).clamp(min=1.0)
        return RowSelection(local_row, self.col[slot], value, nodes.numel())


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


@dataclass
class RowSelection:
    """Some rows of an epoch aggregation: entry i is ``(row[i], column[i])`` with weight ``value[i]``.

    ``row`` is local (0..num_rows-1, non-decreasing), ``column`` a global node id.
    """

    row: Tensor
    column: Tensor
    value: Tensor
    num_rows: int

    def matrix(self, column_position: Tensor, num_columns: int) -> AggregationMatrix:
        """``[num_rows, num_columns]`` matrix, global columns mapped through ``column_position``."""
        return AggregationMatrix.from_entries(self.row, column_position[self.column], self.value,
                                              self.num_rows, num_columns)


def _extend(prefix: Tensor, candidates: Tensor, position: Tensor) -> Tensor:
    """``prefix`` followed by the distinct ``candidates`` not in it; ``position`` ([N], -1 =
    absent, holding the prefix's positions on entry) is updated to the result's positions."""
    new = torch.unique(candidates[position[candidates] < 0])
    position[new] = torch.arange(prefix.numel(), prefix.numel() + new.numel())
    return torch.cat([prefix, new])


def _positions(nodes: Tensor, num_nodes: int) -> Tensor:
    position = torch.full((num_nodes,), -1, dtype=torch.long)
    position[nodes] = torch.arange(nodes.numel())
    return position


def computation_graph(
    out_aggregation: EpochAggregation,
    in_aggregation: EpochAggregation | None,
    sources: Tensor,
    targets: Tensor,
    num_layers: int,
    excluded_edges: Tensor | None = None,
) -> ComputationGraph:
    r"""The nodes and aggregation rows that L layers need for s of ``sources`` and t of ``targets``.

    With :math:`S_L` = distinct sources and :math:`T_L` = distinct targets, for l = L..1:

    .. math::
        S_{l-1} = S_l \cup S_{in}(T_l), \qquad T_{l-1} = T_l \cup S_{out}(S_l)

    (the source side aggregates targets of out-neighbours and vice versa; the self term needs
    the node itself one layer down). Each set lists the next layer's set first, so the self term
    is a prefix slice. Entries reached through ``excluded_edges`` are dropped before the sets
    are grown. With ``in_aggregation=None`` (undirected SAGE) one set per layer is grown from
    ``out_aggregation`` over sources and targets together.

    Returns:
        :class:`models.encoder.ComputationGraph`, with ``source_position`` / ``target_position``
        mapping a global id to its row in the encoder's output (-1 if absent).
    """
    num_nodes = out_aggregation.num_nodes
    if in_aggregation is None:
        nodes = torch.unique(torch.cat([sources, targets]))
        sources = targets = nodes
    source = torch.unique(sources)
    target = torch.unique(targets)
    source_position = _positions(source, num_nodes)
    target_position = _positions(target, num_nodes)
    source_nodes, target_nodes = [source], [target]
    out_adj: list[AggregationMatrix] = []
    in_adj: list[AggregationMatrix] = []
    s_pos, t_pos = source_position.clone(), target_position.clone()
    for _ in range(num_layers):
        out_rows = out_aggregation.rows(source, excluded_edges)
        if in_aggregation is None:
            source = target = _extend(source, out_rows.column, s_pos)
            adjacency = out_rows.matrix(s_pos, source.numel())
            out_adj.append(adjacency)
            in_adj.append(adjacency)
        else:
            in_rows = in_aggregation.rows(target, excluded_edges)
            target = _extend(target, out_rows.column, t_pos)
            source = _extend(source, in_rows.column, s_pos)
            out_adj.append(out_rows.matrix(t_pos, target.numel()))
            in_adj.append(in_rows.matrix(s_pos, source.numel()))
        source_nodes.append(source)
        target_nodes.append(target)
    return ComputationGraph(
        source_nodes=source_nodes[::-1], target_nodes=target_nodes[::-1],
        out_adj=out_adj[::-1], in_adj=in_adj[::-1],
        source_position=source_position, target_position=target_position,
    )


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


class EpochSeededShuffle(torch.utils.data.Sampler[int]):
    """Shuffles ``0..n-1`` with a permutation that depends only on ``(seed, epoch)``.

    Lightning calls :meth:`set_epoch` before every epoch, so a run resumed from a checkpoint
    sees exactly the batches an uninterrupted run would (a DataLoader's own generator state is
    not checkpointed). Under DDP each process iterates its share (:func:`rank_share`).
    """

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(rank_share(list(range(self.size))))

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1_000_033 + self.epoch)
        return iter(rank_share(torch.randperm(self.size, generator=generator).tolist()))
