"""Small graph facts over ``edge_index [2, E]`` used by several stages."""

from __future__ import annotations

import torch


def in_out_degrees(edge_index: torch.Tensor, num_nodes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(in_degree, out_degree)``, each LongTensor ``[num_nodes]``."""
    in_degree = torch.bincount(edge_index[1], minlength=num_nodes)
    out_degree = torch.bincount(edge_index[0], minlength=num_nodes)
    return in_degree, out_degree


def reverse_exists(edges: torch.Tensor, graph: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """For each edge (u, v) of ``edges [2, Q]``: does (v, u) occur in ``graph [2, E]``?

    Returns BoolTensor ``[Q]``. Vectorised through sorted ``u * N + v`` keys.
    """
    keys = torch.sort(graph[0] * num_nodes + graph[1]).values
    reverse = edges[1] * num_nodes + edges[0]
    if keys.numel() == 0:
        return torch.zeros(edges.shape[1], dtype=torch.bool)
    position = torch.searchsorted(keys, reverse).clamp(max=keys.numel() - 1)
    return keys[position] == reverse


def random_projection_embedding(
    edge_index: torch.Tensor, num_nodes: int, dim: int, hops: int, generator: torch.Generator
) -> torch.Tensor:
    r"""Unit-norm node vectors in which nodes with shared neighbours are close (FastRP-style).

    With :math:`\hat A = D^{-1} (A + A^T)` the row-normalised undirected adjacency and
    :math:`R \sim \mathcal N(0, 1/d)` a random ``[N, dim]`` projection:

    .. math::
        X = \mathrm{norm}\Big(R + \sum_{h=1}^{H} \hat A^h R\Big)

    (Chen et al., "Fast and Accurate Network Embeddings via Very Sparse Random Projection",
    2019, without their degree re-weighting). Two nodes bought with the same products share
    the terms of :math:`\hat A R`, so :math:`x_u \cdot x_v` is a smoothed co-occurrence score.
    Used to initialise the ID tables (``train.id_init: structure``): cheap (a few sparse
    products), and it saves the many epochs random tables need before neighbours agree.
    Isolated nodes keep their random row.

    Args:
        edge_index: ``[2, E]`` training edges only (no held-out edge may shape the start).
        num_nodes: N.
        dim: width d.
        hops: H >= 0 propagation steps.
        generator: seeds R.

    Returns:
        ``[N, dim]`` float32 with unit rows.
    """
    both = torch.cat([edge_index, edge_index.flip(0)], dim=1)
    degree = torch.bincount(both[0], minlength=num_nodes).clamp(min=1).to(torch.float32)
    adjacency = torch.sparse_coo_tensor(both, 1.0 / degree[both[0]], (num_nodes, num_nodes),
                                        check_invariants=True).coalesce()
    step = torch.randn(num_nodes, dim, generator=generator) / dim**0.5
    total = step.clone()
    for _ in range(hops):
        step = torch.sparse.mm(adjacency, step)
        total += step
    return torch.nn.functional.normalize(total, dim=-1)
