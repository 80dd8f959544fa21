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
