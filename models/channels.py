"""The parts BLADE adds to its dual embeddings, each a small module the encoder composes:
DAEMON's similarity channel and the two degree priors.

A prior adds one column to both embeddings so that :func:`models.encoder.score` (``scale * s .
t``) carries it everywhere downstream (evaluation, ONNX export, serving) without knowing of it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from models.sparse import AggregationMatrix


class SimilarityChannel(nn.Module):
    """DAEMON's symmetric similarity channel: at every layer each role also aggregates the *same*
    role of the node's similarity neighbours (s from s, t from t) through its own ``W_sim^l``;
    the caller passes the similarity matrix (reciprocal pairs, or every edge both ways)."""

    def __init__(self, dim: int, num_layers: int) -> None:
        super().__init__()
        self.weights = nn.ModuleList(nn.Linear(dim, dim, bias=False) for _ in range(num_layers))

    def forward(self, layer: int, similarity: AggregationMatrix, s: Tensor,
                t: Tensor) -> tuple[Tensor, Tensor]:
        """``(A_sim s W_sim^l, A_sim t W_sim^l)``, one pass over the matrix for both roles."""
        s_similar, t_similar = (similarity @ torch.cat([s, t], dim=1)).chunk(2, dim=1)
        return self.weights[layer](s_similar), self.weights[layer](t_similar)


class TargetPrior(nn.Module):
    """Every score u -> v gets ``+ gamma log(1 + d_in(v))`` (what popularity knows: a busy target
    is likelier), plus a learned bias ``b_v`` per target with ``per_node``; gamma starts at 0."""

    def __init__(self, num_nodes: int, per_node: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(0.0))  # learned from no prior at all
        self.node_bias = nn.Parameter(torch.zeros(num_nodes)) if per_node else None

    def bias(self, in_degree: Tensor, rows: Tensor | None = None) -> Tensor:
        """``[N]`` additive score of every node as a target (``[R]``: of nodes ``rows`` only)."""
        if rows is not None:
            in_degree = in_degree[rows]
        bias = self.weight * torch.log1p(in_degree.to(self.weight.dtype))
        if self.node_bias is not None:
            bias = bias + (self.node_bias if rows is None else self.node_bias[rows])
        return bias

    def append(self, s: Tensor, t: Tensor, in_degree: Tensor, rows: Tensor | None,
               scale: Tensor) -> tuple[Tensor, Tensor]:
        """``s = [s, 1]``, ``t = [t, bias / scale]``."""
        bias = self.bias(in_degree, rows)
        return (torch.cat([s, s.new_ones(s.shape[0], 1)], dim=1),
                torch.cat([t, (bias / scale)[:, None]], dim=1))


class SourcePrior(nn.Module):
    """Every score u -> v gets ``+ delta log(1 + d_in(u))``. A term of the query alone changes no
    query's ranking (softmax and every top-k are blind to it), so only the direction loss trains
    delta: it lets ``x(u -> v) - x(v -> u)`` say which end is the popular one."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(0.0))

    def append(self, s: Tensor, t: Tensor, in_degree: Tensor, rows: Tensor | None,
               scale: Tensor) -> tuple[Tensor, Tensor]:
        """``s = [s, query / scale]``, ``t = [t, 1]``."""
        if rows is not None:
            in_degree = in_degree[rows]
        query = self.weight * torch.log1p(in_degree.to(s.dtype))
        return (torch.cat([s, (query / scale)[:, None]], dim=1),
                torch.cat([t, t.new_ones(t.shape[0], 1)], dim=1))


__all__ = ["SimilarityChannel", "SourcePrior", "TargetPrior"]
