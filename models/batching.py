"""One epoch's sampled neighbourhoods as aggregation matrices that a mini-batch can re-weight.

A mini-batch's positive edges must not be message-passing neighbours of their own endpoints
(no leakage). Rebuilding the sparse matrices without those pairs would sort every pair again
for every batch. Instead the CSR structure (and its transpose) is built once per epoch, with
each entry's first-hop training edge, and a batch only recomputes the values: entries whose
first hop is a batch edge get weight 0, and the mean is taken over the entries that remain.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from models.encoder import AGGREGATIONS, AggregationMatrix


class EpochAggregation:
    r"""Sparse ``[N, N]`` aggregation over sampled pairs, re-weightable per mini-batch.

    For the pairs (u, v) kept by a batch (``via_edge`` not excluded), with k_u kept pairs in
    row u:

    .. math::
        A_{uv} = 1 / k_u \ (\text{mean}), \quad 1 \ (\text{sum}), \quad
        1 / \sqrt{k_u (d_v + 1)} \ (\text{degree\_weighted})

    and 0 for excluded pairs. Rows with no kept pair are zero (the encoder's self term carries
    the node).

    Args:
        index: ``[2, M]`` pairs (u, v), v in S(u), e.g. the sampler's ``out_index``.
        via_edge: ``[M]`` first-hop training edge id of each pair (leakage masking); may be
            taken modulo ``num_edges`` by the caller for graphs listed in both directions.
        num_nodes: N.
        aggregation: ``"mean" | "sum" | "degree_weighted"``.
        node_degree: ``[N]`` degrees for ``"degree_weighted"``.
    """

    def __init__(
        self,
        index: Tensor,
        via_edge: Tensor,
        num_nodes: int,
        aggregation: str = "mean",
        node_degree: Tensor | None = None,
    ) -> None:
        if index.dim() != 2 or index.shape[0] != 2:
            raise ValueError(f"index must have shape [2, M] (rows u, v), got {list(index.shape)}")
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
        if index.numel() > 0 and (int(index.min()) < 0 or int(index.max()) >= num_nodes):
            raise ValueError(
                f"index holds node ids in [{int(index.min())}, {int(index.max())}], "
                f"outside [0, {num_nodes}); was num_nodes taken from the same graph?"
            )
        if aggregation == "degree_weighted" and (node_degree is None or node_degree.shape != (num_nodes,)):
            raise ValueError("aggregation='degree_weighted' needs node_degree of shape [num_nodes]")
        self.num_nodes = num_nodes
        self.aggregation = aggregation
        index = index.long()
        order = torch.argsort(index[0] * num_nodes + index[1])
        self.row = index[0, order]
        self.col = index[1, order]
        self.via_edge = via_edge[order]
        self.crow = _compressed(self.row, num_nodes)
        # Transpose in CSR: entries sorted by (col, row); t_order maps its slots to ours.
        self.t_order = torch.argsort(self.col * num_nodes + self.row)
        self.t_crow = _compressed(self.col[self.t_order], num_nodes)
        self.t_col = self.row[self.t_order]
        self.neighbour_degree = (
            node_degree.to(torch.float32)[self.col] + 1.0 if node_degree is not None else None
        )

    def matrix(self, excluded_edges: Tensor | None = None) -> AggregationMatrix:
        """The aggregation matrix with pairs whose first hop is an excluded edge dropped.

        Args:
            excluded_edges: BoolTensor ``[E]`` over training edge ids (True = drop), or None.
        """
        if excluded_edges is None:
            keep = torch.ones(self.row.numel(), dtype=torch.float32)
        else:
            keep = (~excluded_edges[self.via_edge]).to(torch.float32)
        kept_per_row = torch.zeros(self.num_nodes, dtype=torch.float32).index_add_(0, self.row, keep)
        if self.aggregation == "mean":
            value = keep / kept_per_row[self.row].clamp(min=1.0)
        elif self.aggregation == "sum":
            value = keep
        else:
            value = keep * torch.rsqrt(kept_per_row[self.row].clamp(min=1.0) * self.neighbour_degree)
        return AggregationMatrix(
            matrix=_csr(self.crow, self.col, value, self.num_nodes),
            transpose=_csr(self.t_crow, self.t_col, value[self.t_order], self.num_nodes),
        )


def aggregation_matrix(
    index: Tensor,
    num_nodes: int,
    aggregation: str = "mean",
    node_degree: Tensor | None = None,
) -> AggregationMatrix:
    """The aggregation matrix of sampled pairs with nothing excluded (inference, tests).

    Same weights as :class:`EpochAggregation`; a pair listed twice counts twice in the mean.

    Args:
        index: ``[2, M]`` pairs (u, v), v in S(u).
        num_nodes, aggregation, node_degree: as for :class:`EpochAggregation`.
    """
    no_edge = torch.zeros(index.shape[-1], dtype=torch.long)
    return EpochAggregation(index, no_edge, num_nodes, aggregation, node_degree).matrix(None)


def _compressed(sorted_row: Tensor, num_nodes: int) -> Tensor:
    crow = torch.zeros(num_nodes + 1, dtype=torch.long)
    crow[1:] = torch.cumsum(torch.bincount(sorted_row, minlength=num_nodes), 0)
    return crow


def _csr(crow: Tensor, col: Tensor, value: Tensor, num_nodes: int) -> Tensor:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, col, value, (num_nodes, num_nodes), check_invariants=False)


class EpochSeededShuffle(torch.utils.data.Sampler[int]):
    """Shuffles ``0..n-1`` with a permutation that depends only on ``(seed, epoch)``.

    Lightning calls :meth:`set_epoch` before every epoch, so a run resumed from a checkpoint
    sees exactly the batches an uninterrupted run would (a DataLoader's own generator state is
    not checkpointed).
    """

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1_000_033 + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())
