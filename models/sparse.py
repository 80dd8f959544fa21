"""Sparse aggregation for message passing: a CSR matrix with its cached transpose, and the
nodes and matrices an L-layer encoder needs (:class:`ComputationGraph`).

``torch.sparse.mm`` on CSR computes the backward product ``A^T dL/dy`` by transposing ``A`` at
every step; :class:`AggregationMatrix` keeps the transpose, built once per epoch, and
:class:`_SparseMatMul` uses it (the recomputed transpose made the backward about 4x slower
than the forward: ``docs/decisions.md``, "measurements that were code comments").
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class AggregationMatrix:
    """A sparse ``[N, N]`` aggregation matrix ``A`` together with its transpose.

    ``A @ X`` (with ``X: [N, d]``) aggregates, for every node u, the rows X_v of its sampled
    neighbours v. The transpose is kept because the backward pass needs ``A^T @ grad``:
    ``torch.sparse.mm`` rebuilds ``A^T`` (a sort of all M entries) on every backward call,
    which made its backward several times slower than the forward on a graph of 1M edges.
    Built by :class:`models.batching.EpochAggregation` (structure once per epoch, values per
    supervision split) or :func:`models.batching.aggregation_matrix`.

    Attributes:
        matrix: CSR ``[N, N]``, ``matrix[u, v]`` = weight of v in u's aggregation.
        transpose: CSR ``[N, N]``, the transpose of ``matrix``.
    """

    matrix: Tensor
    transpose: Tensor

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.matrix.shape)

    def __matmul__(self, x: Tensor) -> Tensor:
        """``A @ x`` for dense ``x: [C, d]`` -> ``[R, d]``, differentiable w.r.t. ``x`` only."""
        return _SparseMatMul.apply(self.matrix, self.transpose, x)

    def to(self, device: torch.device | str) -> AggregationMatrix:
        return AggregationMatrix(self.matrix.to(device), self.transpose.to(device))

    def rows(self, nodes: Tensor) -> AggregationMatrix:
        """Rows ``nodes`` of ``A`` (``[R, C]``, in that order) with their transpose ``[C, R]``:
        the aggregations of only the nodes a loss reads (the last layer of a training step)."""
        local_row, slot = csr_row_slots(self.matrix.crow_indices(), nodes)
        return AggregationMatrix.from_entries(local_row, self.matrix.col_indices()[slot],
                                              self.matrix.values()[slot], nodes.numel(), self.matrix.shape[1])

    @staticmethod
    def from_entries(row: Tensor, column: Tensor, value: Tensor, num_rows: int,
                     num_columns: int) -> AggregationMatrix:
        """``A[row[i], column[i]] = value[i]`` (``row`` non-decreasing), with its transpose."""
        t_order = torch.argsort(column * num_rows + row)
        return AggregationMatrix(
            matrix=csr_tensor(csr_pointer(row, num_rows), column, value, (num_rows, num_columns)),
            transpose=csr_tensor(csr_pointer(column[t_order], num_columns), row[t_order], value[t_order],
                           (num_columns, num_rows)))

    def to_dense(self) -> Tensor:
        return self.matrix.to_dense()


def csr_row_slots(crow: Tensor, nodes: Tensor) -> tuple[Tensor, Tensor]:
    """The entries of CSR rows ``nodes``: ``(local_row, slot)``, entry i being at position
    ``slot[i]`` of the CSR arrays and in row ``local_row[i]`` (0..R-1, non-decreasing)."""
    start = crow[nodes]
    count = crow[nodes + 1] - start
    local_row = torch.repeat_interleave(torch.arange(nodes.numel(), device=nodes.device), count)
    first_of_row = torch.cumsum(count, 0) - count
    slot = start[local_row] + torch.arange(local_row.numel(), device=nodes.device) - first_of_row[local_row]
    return local_row, slot


def csr_pointer(sorted_row: Tensor, num_rows: int) -> Tensor:
    """CSR row pointer ``[num_rows + 1]`` of non-decreasing row ids."""
    crow = torch.zeros(num_rows + 1, dtype=torch.long, device=sorted_row.device)
    crow[1:] = torch.cumsum(torch.bincount(sorted_row, minlength=num_rows), 0)
    return crow


def csr_tensor(crow: Tensor, col: Tensor, value: Tensor, shape: tuple[int, int]) -> Tensor:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, col, value, shape, check_invariants=False)


class _SparseMatMul(torch.autograd.Function):
    """y = A x with the backward ``dL/dx = A^T dL/dy`` from a precomputed CSR transpose."""

    @staticmethod
    def forward(ctx, matrix: Tensor, transpose: Tensor, x: Tensor) -> Tensor:
        ctx.transpose = transpose
        return matrix @ x

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> tuple[None, None, Tensor]:
        return None, None, ctx.transpose @ grad_output


@dataclass(frozen=True)
class ComputationGraph:
    """The nodes and aggregation matrices an L-layer encoder needs, layer 0 (input) first.

    ``source_nodes[l]`` / ``target_nodes[l]`` are the global ids whose source / target
    embeddings layer l computes (None = all N nodes); each starts with the ids of layer l + 1,
    so the self term of layer l + 1 is a prefix slice. ``out_adj[l]`` is
    ``[|S_{l+1}|, |T_l|]`` (the source side of layer l + 1 aggregates targets) and ``in_adj[l]``
    is ``[|T_{l+1}|, |S_l|]``.

    Attributes:
        last_rows: ``[R]`` distinct node ids whose last-layer ``s``
            and ``t`` are computed, in that order (the rows of the output); None = all N.
            Earlier layers still encode every node. A training step needs the last layer
            only for its edges' endpoints and its negatives, a fraction of a large graph's nodes.
    """

    source_nodes: list[Tensor | None]
    target_nodes: list[Tensor | None]
    out_adj: list[AggregationMatrix]
    in_adj: list[AggregationMatrix]
    similarity_adj: AggregationMatrix | None = None
    target_in_degree: Tensor | None = None
    last_rows: Tensor | None = None

    @classmethod
    def full(cls, out_adj: AggregationMatrix, in_adj: AggregationMatrix | None,
             num_layers: int, similarity_adj: AggregationMatrix | None = None,
             target_in_degree: Tensor | None = None) -> ComputationGraph:
        """Every node at every layer, the same ``[N, N]`` matrices at each layer.

        ``similarity_adj`` (``[N, N]``, symmetric pairs such as reciprocal edges) feeds the
        similarity channel and ``target_in_degree`` (``[N]``, in-degree in the message-passing
        graph) the target prior; both only exist for full-graph encoding."""
        in_adj = out_adj if in_adj is None else in_adj
        return cls([None] * (num_layers + 1), [None] * (num_layers + 1),
                   [out_adj] * num_layers, [in_adj] * num_layers,
                   similarity_adj=similarity_adj, target_in_degree=target_in_degree)

    def to(self, device: torch.device | str) -> ComputationGraph:
        move = lambda nodes: None if nodes is None else nodes.to(device)  # noqa: E731
        return ComputationGraph(
            [move(n) for n in self.source_nodes], [move(n) for n in self.target_nodes],
            [a.to(device) for a in self.out_adj], [a.to(device) for a in self.in_adj],
            None if self.similarity_adj is None else self.similarity_adj.to(device),
            move(self.target_in_degree), move(self.last_rows))


__all__ = ["AggregationMatrix", "ComputationGraph", "csr_pointer", "csr_row_slots", "csr_tensor"]
